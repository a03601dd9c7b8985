"""Named, declarative interlocks: permissives before a step, run interlocks and safety inputs during it.

- A permissive refused before a step leaves the run HELD with the interlock's name and reason.
- A run interlock (tool alarm, a process value out of its band) trips -> the run holds.
- A safety input (EMO, door opened mid-run) trips -> abort to the safe state now.
Software is not the safety layer: it reads the tool's safety inputs and reacts. Safety interlocks can
never be bypassed; the others need a role, a reason and an expiry, and every bypass is journaled.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from drivers.tool import ProcessState, ToolStatus
from sequencer.identity import ByIdentity

# interlock input -> the permissive's name in the field's words
INPUT_PERMISSIVES = {
    "door_closed": "door_closed", "vacuum_ok": "vacuum_at_base", "cooling_water_ok": "cooling_water_on",
    "gas_ok": "gas_supply_on", "exhaust_ok": "exhaust_on", "bath_level_ok": "bath_level_ok",
    "n2_ok": "n2_supply_on", "emo_ok": "emo_clear",
}
SAFETY = ("emo_clear", "door_closed_mid_run")


class Action(StrEnum):
    HOLD = "hold"
    ABORT = "abort"


class Bypass(BaseModel):
    """A temporary, journaled override of one non-safety interlock."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    interlock: str
    role: Literal["engineer", "supervisor", "maintenance"]
    reason: str = Field(min_length=10, description="why, in words an auditor can follow")
    who: str = Field(min_length=1)
    expires_at: datetime

    def active(self, now: datetime | None = None) -> bool:
        return (now or datetime.now(UTC)) < self.expires_at


class BypassRefused(ValueError):
    pass


def check_bypassable(interlock: str) -> None:
    if interlock in SAFETY:
        raise BypassRefused(f"{interlock} is a safety interlock and can never be bypassed")
    known = (set(INPUT_PERMISSIVES.values()) | {p.name for p in PERMISSIVES} | {b.name for b in BANDS}
             | {"tool_alarm"})
    if interlock not in known:
        raise BypassRefused(f"unknown interlock {interlock!r}; bypassable: {sorted(known - set(SAFETY))}")


@dataclass(frozen=True)
class Refusal:
    interlock: str
    reason: str
    bypassed_by: Bypass | None = None


@dataclass(frozen=True)
class StepContext:
    step: Any  # sequencer.flow.Step
    tool: str
    status: ToolStatus
    wafer_reason: str | None  # from the traveler: None if the wafer may be processed


@dataclass(frozen=True)
class Permissive:
    name: str
    check: Callable[[StepContext], str | None]


def _tool_idle(ctx: StepContext) -> str | None:
    st = ctx.status
    return None if st.state is ProcessState.IDLE else f"tool {ctx.tool} is {st.state}, not IDLE"


def _no_alarm(ctx: StepContext) -> str | None:
    a = ctx.status.alarm
    return None if a is None else f"tool {ctx.tool} has alarm {a.id}: {a.text}"


_VERDICTS: ByIdentity[tuple[str | None]] = ByIdentity()  # per recipe object: (None or why not,)


def recipe_verdict(recipe: Any) -> str | None:
    """None if the recipe is inside its kind's ranges, else why not. Judged once per (frozen) recipe
    object: the engine judges every step's recipe when a run starts, so the permissive only looks up
    the verdict on the wake-up after a job."""
    held = _VERDICTS.get(recipe)
    if held is not None:
        return held[0]
    try:
        type(recipe).model_validate(recipe.model_dump())
        reason = None
    except ValueError as exc:
        reason = f"recipe outside its range: {exc}"
    return _VERDICTS.put(recipe, (reason,))[0]


def _recipe_in_range(ctx: StepContext) -> str | None:
    return None if ctx.step.recipe is None else recipe_verdict(ctx.step.recipe)


PERMISSIVES: tuple[Permissive, ...] = (
    Permissive("tool_idle", _tool_idle),
    Permissive("no_tool_alarm", _no_alarm),
    Permissive("wafer_state", lambda ctx: ctx.wafer_reason),
    Permissive("recipe_in_range", _recipe_in_range),
)


def evaluate_permissives(
    ctx: StepContext, bypasses: list[Bypass], now: datetime | None = None
) -> list[Refusal]:
    """Every refused permissive, each marked with the active bypass that overrides it (if any)."""
    refusals = [Refusal(p.name, reason) for p in PERMISSIVES if (reason := p.check(ctx)) is not None]
    for inp, healthy in ctx.status.interlocks.items():
        if not healthy:
            name = INPUT_PERMISSIVES.get(inp, inp)
            refusals.append(Refusal(name, f"{inp} is not made on {ctx.tool}"))
    active = {b.interlock: b for b in bypasses if b.active(now)}
    return [Refusal(r.interlock, r.reason, None if r.interlock in SAFETY else active.get(r.interlock))
            for r in refusals]


@dataclass(frozen=True)
class Band:
    """A process value's allowed band while the tool processes; limits may follow a recipe field."""

    name: str
    kind: str
    variable: str
    high: Callable[[Any], float | None]
    low: Callable[[Any], float | None] = lambda _r: None


BANDS: tuple[Band, ...] = (
    Band("chuck_temp_band", "bonder", "chuck_temp_c", lambda r: r.temp_c + 15),
    Band("susceptor_temp_band", "cvd", "susceptor_temp_c", lambda r: r.deposition_temp_c + 15),
    Band("bath_temp_band", "plater", "bath_temperature_c", lambda r: 40.0, lambda r: 15.0),
    Band("spindle_overspeed", "dicing_saw", "spindle_speed_rpm", lambda r: r.spindle_rpm * 1.1),
    Band("rf_power_band", "etcher", "rf_power_fwd_w", lambda r: r.rf_power_w * 1.1),
)


@dataclass(frozen=True)
class Trip:
    interlock: str
    reason: str
    action: Action


class InterlockTripped(Exception):
    """Raised from the job monitor to end the wait; the engine acts on `trip.action`."""

    def __init__(self, trip: Trip) -> None:
        super().__init__(f"{trip.interlock}: {trip.reason}")
        self.trip = trip


def watch(kind: str, recipe: Any, status: ToolStatus, bypasses: list[Bypass]) -> Trip | None:
    """The first tripped safety input or run interlock in one polled status, or None."""
    if status.interlocks.get("emo_ok") is False:
        return Trip("emo_clear", "emergency off pressed", Action.ABORT)
    if status.interlocks.get("door_closed") is False:
        return Trip("door_closed_mid_run", "door opened while processing", Action.ABORT)
    active = {b.interlock for b in bypasses if b.active()}
    if status.alarm is not None and "tool_alarm" not in active:
        return Trip("tool_alarm", f"alarm {status.alarm.id}: {status.alarm.text}", Action.HOLD)
    for band in BANDS:
        if band.kind != kind or band.name in active or band.variable not in status.values:
            continue
        value = float(status.values[band.variable])
        hi, lo = band.high(recipe), band.low(recipe)
        if hi is not None and value > hi:
            return Trip(band.name, f"{band.variable} {value:.4g} above {hi:.4g}", Action.HOLD)
        if lo is not None and value < lo:
            return Trip(band.name, f"{band.variable} {value:.4g} below {lo:.4g}", Action.HOLD)
    return None
