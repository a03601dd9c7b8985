"""Named, declarative interlocks: permissives before a step, run interlocks and safety inputs during it.

- A permissive refused before a step leaves the run HELD with the interlock's name and reason.
- A run interlock (tool alarm, a process value out of its band) trips -> the run holds.
- A safety input (EMO, door opened mid-run) trips -> abort to the safe state now.
Software is not the safety layer: it reads the tool's safety inputs and reacts. Safety interlocks can
never be bypassed; the others need a role, a reason and an expiry, and every bypass is journaled.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from drivers.judgement import Band
from drivers.tool import ProcessState, ToolStatus
from sequencer.process.identity import ByIdentity

# interlock input -> the permissive's name in the field's words
INPUT_PERMISSIVES = {
    "door_closed": "door_closed", "vacuum_ok": "vacuum_at_base", "cooling_water_ok": "cooling_water_on",
    "gas_ok": "gas_supply_on", "exhaust_ok": "exhaust_on", "bath_level_ok": "bath_level_ok",
    "n2_ok": "n2_supply_on", "emo_ok": "emo_clear",
}
# Safety interlocks: a refusal or trip of one of these is never bypassed, whatever the role. The
# inputs a profile marks as safety add their own names (safety_names()).
SAFETY = ("emo_clear", "door_closed", "door_closed_mid_run", "safety_alarm", "safety_input_lost")


def safety_names(safety_inputs: Iterable[str]) -> set[str]:
    """Every interlock name that guards a safety input: the fixed ones and each marked input's."""
    return {*SAFETY, *(INPUT_PERMISSIVES.get(n, n) for n in safety_inputs), *safety_inputs}


class Action(StrEnum):
    HOLD = "hold"
    ABORT = "abort"


class Bypass(BaseModel):
    """A temporary, journaled override of one non-safety interlock."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)
    interlock: str
    role: Literal["engineer", "supervisor", "maintenance"]
    reason: str = Field(min_length=10, description="why, in words an auditor can follow")
    who: str = Field(min_length=1)
    expires_at: datetime

    def active(self, now: datetime | None = None) -> bool:
        return (now or datetime.now(UTC)) < self.expires_at


class BypassRefused(ValueError):
    pass


def check_bypassable(interlock: str, safety: Iterable[str] = SAFETY, bands: Iterable[str] = ()) -> None:
    """Refuse a bypass of a safety interlock (for any role) or of a name that is no interlock; `bands`
    are the run-interlock bands of the line's kinds."""
    never = {*SAFETY, *safety}
    if interlock in never:
        raise BypassRefused(
            f"{interlock} guards a safety input and can never be bypassed, whatever the role: the "
            "software must not start or continue a job with a door open, EMO pressed or a safety "
            "interlock lost; make the input on the tool instead")
    known = set(INPUT_PERMISSIVES.values()) | {p.name for p in PERMISSIVES} | set(bands) | {"tool_alarm"}
    if interlock not in known:
        raise BypassRefused(f"unknown interlock {interlock!r}; bypassable: {sorted(known - never)}")


@dataclass(frozen=True)
class Refusal:
    interlock: str
    reason: str
    bypassed_by: Bypass | None = None
    safety: bool = False  # a safety input or a safety-class alarm: no bypass applies


@dataclass(frozen=True)
class StepContext:
    step: Any  # sequencer.process.flow.Step
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
    return None if a is None or a.safety else f"tool {ctx.tool} has alarm {a.id}: {a.text}"


def _no_safety_alarm(ctx: StepContext) -> str | None:
    a = ctx.status.alarm
    return None if a is None or not a.safety else f"tool {ctx.tool} has safety alarm {a.id}: {a.text}"


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
    Permissive("safety_alarm", _no_safety_alarm),
    Permissive("wafer_state", lambda ctx: ctx.wafer_reason),
    Permissive("recipe_in_range", _recipe_in_range),
)


def evaluate_permissives(
    ctx: StepContext, bypasses: list[Bypass], now: datetime | None = None
) -> list[Refusal]:
    """Every refused permissive, each marked with the active bypass that overrides it (if any)."""
    refusals = [Refusal(p.name, reason, safety=p.name in SAFETY)
                 for p in PERMISSIVES if (reason := p.check(ctx)) is not None]
    safety_inputs = ctx.status.safety_inputs
    for inp, healthy in ctx.status.interlocks.items():
        if not healthy:
            name = INPUT_PERMISSIVES.get(inp, inp)
            safe = inp in safety_inputs or name in SAFETY
            what = "safety input " if safe else ""
            refusals.append(Refusal(name, f"{what}{inp} is not made on {ctx.tool}", safety=safe))
    if not refusals:
        return refusals
    active = {b.interlock: b for b in bypasses if b.active(now)}
    return [Refusal(r.interlock, r.reason, None if r.safety else active.get(r.interlock), r.safety)
            for r in refusals]


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


def safety_trip(status: ToolStatus) -> Trip | None:
    """A lost safety input or a safety-class alarm in one status: abort, whatever else it says.

    Either half of a torn read (door bit and alarm read apart) gives this verdict: a door that opened
    between the reads shows as the open door or as its safety alarm, so read order never matters."""
    if status.interlocks.get("emo_ok") is False:
        return Trip("emo_clear", "emergency off pressed", Action.ABORT)
    if status.interlocks.get("door_closed") is False:
        return Trip("door_closed_mid_run", "door opened while processing", Action.ABORT)
    lost = status.unsafe_inputs()
    if lost:
        return Trip("safety_input_lost", f"safety input {lost[0]} lost while processing", Action.ABORT)
    a = status.alarm
    if a is not None and a.safety:
        return Trip("safety_alarm", f"safety alarm {a.id}: {a.text}", Action.ABORT)
    return None


def watch(bands: Sequence[Band], recipe: Any, status: ToolStatus, bypasses: list[Bypass]) -> Trip | None:
    """The first tripped safety input or run interlock (the kind's bands) in one polled status, or None."""
    trip = safety_trip(status)
    if trip is not None:
        return trip
    active = {b.interlock for b in bypasses if b.active()} if bypasses else set()
    a = status.alarm
    if a is not None and a.alarm_class == "process" and "tool_alarm" not in active:
        return Trip("tool_alarm", f"alarm {a.id}: {a.text}", Action.HOLD)
    for band in bands:
        if band.name in active:
            continue
        reason = band.check(recipe, status.values)
        if reason is not None:
            return Trip(band.name, reason, Action.HOLD)
    return None
