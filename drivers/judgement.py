"""Run-interlock bands and result checks: what a kind promises about its process values and results,
declared as data beside its recipe (drivers/kinds/<kind>.py) and read by the sequencer.

A `Band` is watched on every poll of a running job: a process value outside it trips the run
interlock of that name (the job is aborted, the run holds). A `ResultCheck` judges the tool's
measured result against the step's recipe target once the job completed: a result outside its
tolerance fails the step. Limits follow the recipe: `Limit(of="temp_c", offset=15)` is the recipe's
temp_c + 15; `of` may name a recipe field or a recipe method taking no argument.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


class Limit(_Frozen):
    """A limit: a constant `value`, or the recipe's `of` x factor + offset."""

    of: str | None = None
    factor: float = Field(default=1.0, allow_inf_nan=False)
    offset: float = Field(default=0.0, allow_inf_nan=False)
    value: float | None = Field(default=None, allow_inf_nan=False)

    @model_validator(mode="after")
    def _one_source(self) -> Limit:
        if (self.of is None) == (self.value is None):
            raise ValueError("a limit is a constant `value` or a recipe field `of`, exactly one")
        return self

    def resolve(self, recipe: Any) -> float:
        if self.value is not None:
            return self.value
        ref = getattr(recipe, str(self.of))
        base = float(ref() if callable(ref) else ref)
        return base * self.factor + self.offset

    def describe(self) -> str:
        if self.value is not None:
            return f"{self.value:g}"
        scaled = str(self.of) if self.factor == 1 else f"{self.factor:g} x {self.of}"
        if self.offset == 0:
            return scaled
        return f"{scaled} {'+' if self.offset > 0 else '-'} {abs(self.offset):g}"


class Band(_Frozen):
    """A process value's allowed band while the tool processes."""

    name: str = Field(min_length=1, description="the run interlock's name, e.g. chuck_temp_band")
    variable: str = Field(min_length=1, description="a process value of the kind")
    high: Limit | None = None
    low: Limit | None = None
    unless: dict[str, tuple[str, ...]] = Field(
        default_factory=dict, description="not watched when a recipe field has one of these values")

    def check(self, recipe: Any, values: Mapping[str, Any]) -> str | None:
        """Why the polled value is outside the band, or None (also when the value is not polled)."""
        if self.variable not in values:
            return None
        if any(str(getattr(recipe, f)) in v for f, v in self.unless.items()):
            return None
        value = float(values[self.variable])
        if self.high is not None and not value <= (hi := self.high.resolve(recipe)):
            return f"{self.variable} {value:.4g} above {hi:.4g} ({self.high.describe()})"
        if self.low is not None and not value >= (lo := self.low.resolve(recipe)):
            return f"{self.variable} {value:.4g} below {lo:.4g} ({self.low.describe()})"
        return None


class ResultCheck(_Frozen):
    """A measured result against the recipe's target: target - below_pct % .. target + above_pct %
    (+ the recipe's `extra_above_pct` field, e.g. an overetch allowance), or against a window the
    recipe computes (`window`: a method returning (low, high)), or equal to `equals`."""

    name: str = Field(min_length=1)
    result: str = Field(min_length=1, description="a result field of the kind")
    target: Limit | None = None
    below_pct: float = Field(default=10.0, ge=0, le=100)
    above_pct: float = Field(default=10.0, ge=0, le=1000)
    extra_above_pct: str | None = None
    window: str | None = None
    equals: float | bool | None = None
    when: dict[str, tuple[str, ...]] = Field(
        default_factory=dict, description="applies only when each recipe field has one of these values")

    def applies(self, recipe: Any) -> bool:
        return all(str(getattr(recipe, f)) in values for f, values in self.when.items())

    def bounds(self, recipe: Any) -> tuple[float, float]:
        if self.window is not None:
            low, high = getattr(recipe, self.window)()
            return float(low), float(high)
        if self.equals is not None:
            return float(self.equals), float(self.equals)
        assert self.target is not None
        target = self.target.resolve(recipe)
        extra = float(getattr(recipe, self.extra_above_pct)) if self.extra_above_pct else 0.0
        return target * (1 - self.below_pct / 100), target * (1 + (self.above_pct + extra) / 100)

    def check(self, recipe: Any, result: Mapping[str, Any]) -> str | None:
        """Why the result is outside its band, naming value and band; None if inside or not checked."""
        if recipe is None or self.result not in result or not self.applies(recipe):
            return None
        value = float(result[self.result])
        low, high = self.bounds(recipe)
        if low <= value <= high and not math.isnan(value):
            return None
        if low == high:
            return f"{self.result} measured {value:.4g}, expected {low:.4g}"
        what = (f"target {self.target.describe()} = {self.target.resolve(recipe):.4g}" if self.target
                else f"window {self.window}")
        return f"{self.result} measured {value:.4g}, allowed {low:.4g}-{high:.4g} ({what})"
