"""The journal's event kinds, one pydantic model each: what writers build and what every fold reads
(state rebuild, resume, the report's timeline and data), so a renamed field is a type error, not a
silent `None` from `d.get(...)`.

The journal row's `kind` column is the discriminator (`BODIES` maps it to its model). Fields that
journals of older versions lack have defaults, so those journals still read; a model is stored with
only the fields its writer set (`exclude_unset`), so today's stored form is unchanged.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from drivers.validation import describe_validation_error

log = logging.getLogger(__name__)


class Body(BaseModel):
    """The data of one journal event."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    KIND: ClassVar[str]

    def stored(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True)


class RunCreated(Body):
    KIND = "run_created"
    flow: str = ""
    wafers: int = 0
    line: str = ""
    time_scale: float = 1.0
    stack_id: str = ""
    stacks: list[str] = Field(default_factory=list)  # a lot's stacks (older journals: one, stack_id)
    pools: dict[str, list[str]] = Field(default_factory=dict)
    rule: str = "most_steps_left"
    steps: list[str] = Field(default_factory=list)


class StateChanged(Body):
    """An ISA-88 run state transition and who asked for it."""

    KIND = "state"
    from_: str = Field(alias="from")
    to: str
    command: str = ""
    who: str = ""
    why: str = ""


class StepBody(Body):
    """Every step event names its stack (older journals: the lot's first) and step."""

    stack: str = ""
    uid: str
    tool: str | None = None
    job_id: int | None = None
    reason: str = ""  # why it failed, was refused, tripped or is unknown (required by those kinds)


class StepStarted(StepBody):
    KIND = "step_started"
    tool_kind: str | None = Field(default=None, alias="kind")
    tool_job_before: int | None = None
    tool_boot: int | None = None
    recipe: dict[str, Any] | None = None


class StepCompleted(StepBody):
    KIND = "step_completed"
    result: dict[str, Any] | None = None
    recovered: bool = False
    outcome: str | None = None


class StepFailed(StepBody):
    KIND = "step_failed"
    error: str
    reason: str
    started: bool | None = None
    wafer_state: str | None = None


class StepRecovered(StepBody):
    KIND = "step_recovered"
    outcome: str
    reason: str = ""
    result: dict[str, Any] | None = None


class StepUnknown(StepBody):
    KIND = "step_unknown"
    reason: str = ""


class PermissiveRefused(StepBody):
    KIND = "permissive_refused"
    interlock: str
    reason: str


class BypassUsed(StepBody):
    KIND = "bypass_used"
    interlock: str
    reason: str
    role: str
    who: str


class InterlockTripped(StepBody):
    KIND = "interlock_tripped"
    interlock: str
    reason: str
    action: str


class ResultRejected(StepBody):
    KIND = "result_rejected"
    check: str
    reason: str
    result: dict[str, Any] = Field(default_factory=dict)


class BypassGranted(Body):
    KIND = "bypass"
    interlock: str
    role: str
    reason: str
    who: str
    expires_at: str


class ToolAbort(Body):
    KIND = "tool_abort"
    tool: str
    confirmed: bool
    shown: str


class ToolCommand(Body):
    KIND = "tool_command"
    tool: str
    op: str
    who: str
    ok: bool
    answer: str | None = None


class StackScrapped(Body):
    KIND = "stack_scrapped"
    stack: str
    who: str
    why: str
    wafers: list[int] = Field(default_factory=list)


class TravelerFiled(Body):
    KIND = "traveler"
    stacks: list[dict[str, Any]] = Field(default_factory=list)
    claims: dict[str, list[dict[str, Any]]] | list[dict[str, Any]] = Field(default_factory=dict)
    stack: dict[str, Any] | None = None  # older journals: the one stack

    def first(self) -> dict[str, Any] | None:
        return self.stack or (self.stacks[0] if self.stacks else None)


class Note(Body):
    KIND = "note"
    text: str


class AlarmSeen(Body):
    """A tool alarm (older journals; alarms now reach the journal as interlock trips)."""

    KIND = "alarm"
    model_config = ConfigDict(extra="allow", frozen=True)
    stack: str = ""
    uid: str | None = None
    tool: str | None = None
    alarm_id: int | None = None
    text: str = ""


class AlarmAction(Body):
    """An operator's answer to a tool alarm (ISA-18.2): acknowledged, shelved until an expiry, or
    unshelved; in the HMI's journal, with the user and the role."""

    KIND = "alarm_action"
    action: Literal["acknowledge", "shelve", "unshelve"]
    tool: str
    alarm_id: int
    text: str = ""
    alarm_class: str = "process"
    who: str
    role: str
    reason: str = ""
    until: str | None = None  # shelve: when the shelf expires (UTC, ISO 8601)


BODIES: dict[str, type[Body]] = {m.KIND: m for m in (
    RunCreated, StateChanged, StepStarted, StepCompleted, StepFailed, StepRecovered, StepUnknown,
    PermissiveRefused, BypassUsed, InterlockTripped, ResultRejected, BypassGranted, ToolAbort, ToolCommand,
    StackScrapped, TravelerFiled, Note, AlarmSeen, AlarmAction)}
STEP_KINDS = tuple(k for k, m in BODIES.items() if issubclass(m, StepBody))


class Unrecognised(Body):
    """An event this version does not know (a newer writer's) or cannot read: kept, and skipped by
    every fold."""

    KIND = ""
    model_config = ConfigDict(extra="allow", frozen=True)


class UnknownEvent(ValueError):
    """An event kind or field the journal does not know: a writer's bug, refused before it is stored."""


def body(kind: str, data: dict[str, Any]) -> Body:
    """The typed data of a stored event; Unrecognised (logged) for a kind or shape this version
    cannot read, so a journal from a newer version still rebuilds."""
    model = BODIES.get(kind)
    if model is None:
        return Unrecognised.model_validate(data)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        log.warning("%s", describe_validation_error(f"journal event {kind!r} not understood", exc))
        return Unrecognised.model_validate(data)


def body_json(kind: str, payload: str) -> Body:
    """`body` of an event's stored JSON text (how the journal checks what it is about to store)."""
    model = BODIES.get(kind)
    if model is None:
        raise UnknownEvent(f"journal event kind {kind!r} is not one of {sorted(BODIES)}")
    try:
        return model.model_validate_json(payload)
    except ValidationError as exc:
        raise UnknownEvent(describe_validation_error(f"journal event {kind!r}", exc)) from None
