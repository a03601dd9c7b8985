"""A structure's limits come from `configs/structures/<name>.yaml` (found like every config:
drivers/configs.py), validated by the structure's own model: a range is [low, high] with low <= high,
every number finite, no unknown field."""

from __future__ import annotations

import functools
from typing import Annotated, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from drivers.configs import find
from drivers.validation import read_yaml, validate_model


def _ordered(r: tuple[float, float]) -> tuple[float, float]:
    if r[0] > r[1]:
        raise ValueError(f"a range is [low, high] with low <= high, got {list(r)}")
    return r


Range = Annotated[tuple[float, float], AfterValidator(_ordered)]
Positive = Annotated[float, Field(gt=0)]


class Limits(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class StackLimits(Limits):
    """Seeds 000/001 (claims 1-7); its layer rules also judge the csp structure's common layers."""

    insulating_materials: tuple[str, ...]
    insulating_um: Range
    resin_um: Range
    heat_um: Range
    thin_film_kinds: tuple[str, ...]
    min_wafer_um: Positive
    grind_start_tol: Annotated[float, Field(gt=0, lt=1)]


L = TypeVar("L", bound=Limits)


@functools.cache
def load_limits(name: str, model: type[L]) -> L:
    """The limits of structure `name`; ConfigError naming the file and field when they do not fit."""
    path = find("structures", name)
    return validate_model(model, read_yaml(path), str(path))
