"""Does a profile serve its kind? Every variable and command the kind needs, and every setpoint's
register able to hold the whole range of its recipe field (a uint16 at scale 10 holds 0..6553.5:
a recipe allowing 8000 would be written as a wrapped, wrong value)."""

from __future__ import annotations

from typing import Any

import annotated_types

from drivers.errors import ProfileError
from drivers.profiles import HsmsProfile, ModbusProfile
from drivers.profiles.base import ProfileBase
from drivers.profiles.hsms import INTEGER_RANGE

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


def secs_problems(profile: HsmsProfile, kind: Any) -> list[str]:
    """Status and results are polled, so they are SVIDs; an integer item must hold its recipe field's
    range, and job_id every id the driver makes."""
    recipe_model = kind.recipe_model
    polled = kind.required_variables() - set(recipe_model.model_fields)
    problems = [f"variables.{n}: the driver reads it with S1F3, so it needs an svid"
                for n in sorted(polled) if profile.variables[n].role != "sv"]
    wanted = {n: _bounds(f) for n, f in recipe_model.model_fields.items()} | {"job_id": (1.0, 2.0**31 - 1)}
    for name, (low, high) in wanted.items():
        var = profile.variables.get(name)
        if var is None or var.enum is not None:
            continue
        if var.format in ("A", "BOOLEAN") and name == "job_id":
            problems.append(f"variables.job_id: a {var.format} item cannot hold a job id (use U4)")
        held = INTEGER_RANGE.get(var.format)
        if held is None:
            continue
        for bound in (b for b in (low, high) if b is not None):
            if not held[0] <= bound <= held[1]:
                problems.append(f"variables.{name}: a {var.format} item holds {held[0]}..{held[1]}, "
                                f"but {bound:g} is allowed")
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
    problems = (setpoint_problems(profile, kind.recipe_model) if isinstance(profile, ModbusProfile)
                else secs_problems(profile, kind) if isinstance(profile, HsmsProfile) else [])
    if problems:
        raise ProfileError(f"{where}: " + "; ".join(problems))
