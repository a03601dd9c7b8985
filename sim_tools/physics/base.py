"""The physics contract: what a kind's emulator computes, independent of any protocol."""

from __future__ import annotations

import functools
import math
import random
import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, get_args, get_origin

from drivers.kinds import KINDS
from drivers.profiles.base import Value
from drivers.tool import Recipe


@dataclass(frozen=True)
class Phase:
    """A stretch of a job with one E30 state; `values(f)` gives process values at fraction f."""

    name: str
    state: str  # "SETUP" or "EXECUTING"
    duration_s: float
    values: Callable[[float], dict[str, Value]]


@dataclass
class Plan:
    phases: list[Phase]
    results: dict[str, Value]
    # results if the job stops after `elapsed` tool seconds (abort): what was really done
    partial: Callable[[float], dict[str, Value]] | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        return sum(p.duration_s for p in self.phases)


class Physics(ABC):
    kind: ClassVar[str]
    recipe_model: ClassVar[type[Recipe]]
    # the process value a DRIFT fault walks off (a sensor going out of band); default: the first one
    drift_variable: ClassVar[str | None] = None

    # the figures a line may override in `emulator.params`; {field} expands over a recipe field's values
    PARAMS: ClassVar[tuple[str, ...]] = ()

    def __init__(self, spread: float = 0.01, params: dict[str, float] | None = None) -> None:
        """`spread` is the relative 1-sigma scatter of results; `params` override kind defaults.

        ValueError for a name the kind does not know (a typo would silently change nothing) or a
        negative or non-finite figure (every figure is a time, rate, ratio or temperature)."""
        self.spread = spread
        self.params = dict(params or {})
        known = self.known_params()
        unknown = sorted(set(self.params) - known)
        if unknown:
            raise ValueError(f"params: {unknown} unknown to the {self.kind} emulator; "
                             f"it knows {sorted(known)}")
        bad = sorted(n for n, v in self.params.items() if not (math.isfinite(v) and v >= 0))
        if bad:
            raise ValueError(f"params.{bad[0]}: {self.params[bad[0]]} is not a finite number >= 0")

    @property
    def interlocks(self) -> tuple[str, ...]:
        """The kind's interlock inputs, as its driver declares them (never restated here)."""
        return KINDS[self.kind].interlock_inputs

    @classmethod
    def known_params(cls) -> set[str]:
        out: set[str] = set()
        for template in cls.PARAMS:
            fields = re.findall(r"{(\w+)}", template)
            if not fields:
                out.add(template)
                continue
            values = get_args(cls.recipe_model.model_fields[fields[0]].annotation)
            out.update(template.replace(f"{{{fields[0]}}}", str(v)) for v in values)
        return out

    def noisy(self, rng: random.Random, value: float) -> float:
        return value * (1.0 + rng.gauss(0.0, self.spread)) if self.spread else value

    def default_setpoints(self) -> dict[str, Value]:
        """What the setpoint variables read before the first job: defaults, else zero/first.

        Computed once per kind: the emulator calls this on every read."""
        return dict(_default_setpoints(self.recipe_model))

    @abstractmethod
    def idle_values(self) -> dict[str, Value]:
        """Process values of the idle tool."""

    @abstractmethod
    def initial_results(self) -> dict[str, Value]:
        """Result variables before any job."""

    @abstractmethod
    def plan(self, recipe: Recipe, rng: random.Random) -> Plan:
        """Phases and results of one job."""


def ramp(a: float, b: float, f: float) -> float:
    return a + (b - a) * min(1.0, max(0.0, f))


@functools.cache
def _default_setpoints(recipe_model: type[Recipe]) -> tuple[tuple[str, Value], ...]:
    out: list[tuple[str, Value]] = []
    for name, f in recipe_model.model_fields.items():
        if not f.is_required():
            out.append((name, f.default))
        elif get_origin(f.annotation) is Literal:
            out.append((name, get_args(f.annotation)[0]))
        else:
            out.append((name, 0))
    return tuple(out)
