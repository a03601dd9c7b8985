"""Does a profile serve its kind? Every variable and command the kind needs, and every setpoint's
register able to hold the whole range of its recipe field (a uint16 at scale 10 holds 0..6553.5:
a recipe allowing 8000 would be written as a wrapped, wrong value)."""

from __future__ import annotations

from typing import Any

import annotated_types

from drivers.errors import ProfileError
from drivers.profiles import ModbusProfile
from drivers.profiles.base import ProfileBase

RAW_RANGE = {"uint16": (0, 65535), "int16": (-32768, 32767), "uint32": (0, 2**32 - 1),
             "int32": (-(2**31), 2**31 - 1)}


def _bounds(field: Any) -> tuple[float | None, float | None]:
    low = high = None
    for m in field.metadata:
        if isinstance(m, annotated_types.Ge | annotated_types.Gt):
            low = float(m.ge if isinstance(m, annotated_types.Ge) else m.gt)  # type: ignore[arg-type]
        if isinstance(m, annotated_types.Le | annotated_types.Lt):
            high = float(m.le if isinstance(m, annotated_types.Le) else m.lt)  # type: ignore[arg-type]
    return low, high


def setpoint_problems(profile: ModbusProfile, recipe_model: Any) -> list[str]:
    problems = []
    for name, field in recipe_model.model_fields.items():
        var = profile.variables.get(name)
        if var is None or var.type not in RAW_RANGE or var.enum is not None:
            continue
        low, high = _bounds(field)
        raw_low, raw_high = RAW_RANGE[var.type]
        held = sorted(((raw_low * var.scale + var.offset), (raw_high * var.scale + var.offset)))
        for bound in (b for b in (low, high) if b is not None):
            if not held[0] <= bound <= held[1]:
                problems.append(f"variables.{name}: a {var.type} at scale {var.scale:g}, "
                                f"offset {var.offset:g} holds {held[0]:g}..{held[1]:g}, "
                                f"but the recipe allows {bound:g}")
                break
    return problems


def check_fits_kind(profile: ProfileBase, kind: Any, where: str) -> None:
    """ProfileError naming `where` and every gap between the profile and its kind."""
    missing = sorted(kind.required_variables() - profile.variable_names())
    missing_cmd = sorted(kind.required_commands() - profile.command_names())
    if missing:
        raise ProfileError(f"{where}: {profile.name} lacks variables {missing} needed by kind {kind.kind}")
    if missing_cmd:
        raise ProfileError(f"{where}: {profile.name} lacks commands {missing_cmd} needed by kind {kind.kind}")
    if isinstance(profile, ModbusProfile):
        problems = setpoint_problems(profile, kind.recipe_model)
        if problems:
            raise ProfileError(f"{where}: " + "; ".join(problems))
