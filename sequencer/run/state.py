"""Rebuild a run's state from its journal alone: what resume, status and report start from.

The key output for recovery is `RunSnapshot.in_doubt()`: steps whose last event is step_started, i.e.
a process job that may have run, partly run or never started when the sequencer died. Those are never
re-run blindly; recovery asks the tool what happened and journals step_recovered or step_unknown.
Unknown event kinds are skipped, so an older reader can still rebuild a newer journal.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from sequencer.run import events as ev_
from sequencer.run.control import HELD_STATES, RunState, held_reason_for
from sequencer.run.journal import Event, Journal, read_events, read_run_id

StepStatus = Literal["pending", "started", "completed", "failed", "unknown", "recovered"]


class StepRecord(BaseModel):
    """The journaled fate of one flow step (by uid)."""

    uid: str
    status: StepStatus
    tool: str | None = None
    job_id: int | None = None
    kind: str | None = None  # tool kind, from step_started
    tool_job_before: int | None = None  # the tool's last job id before ours: tells "never started" apart
    result: dict[str, Any] | None = None
    reason: str | None = None
    error: str | None = None  # step_failed: the error class/text; reason holds the why
    outcome: str | None = None  # step_recovered: what the tool said happened
    seq: int = 0  # seq of the event that set this status


class BypassRecord(BaseModel):
    interlock: str
    role: str | None = None
    reason: str | None = None
    expires_at: str | None = None
    who: str | None = None
    seq: int
    ts: str


class RunSnapshot(BaseModel):
    """Everything the journal says about a run, as of event `last_seq`."""

    model_config = ConfigDict(validate_assignment=True)

    run_id: str
    created: bool = False  # run_created seen; until then flow..stack_id keep these empty defaults
    flow: str = ""
    wafers: int = 0
    line: str = ""
    time_scale: float = 1.0
    stack_id: str = ""
    stacks: list[str] = Field(default_factory=list)  # a lot's stack ids (older journals: empty)
    pools: dict[str, list[str]] = Field(default_factory=dict)  # kind -> tool names the run dispatched over
    scrapped: list[str] = Field(default_factory=list)  # stacks an operator took out of the lot
    rule: str = "most_steps_left"  # the dispatch rule (older journals: the default)
    state: RunState = RunState.IDLE
    held_reason: str | None = None
    steps: dict[str, StepRecord] = Field(default_factory=dict)
    bypasses: list[BypassRecord] = Field(default_factory=list)
    alarms: list[dict[str, Any]] = Field(default_factory=list)
    traveler: dict[str, Any] | None = None  # the last traveler snapshot, if any
    last_seq: int = 0

    def in_doubt(self) -> list[StepRecord]:
        """Steps started but never resolved, oldest first: recovery must ask their tools."""
        return sorted((s for s in self.steps.values() if s.status == "started"), key=lambda s: s.seq)


_STEP_STATUS: dict[str, StepStatus] = {
    "step_started": "started",
    "step_completed": "completed",
    "step_failed": "failed",
    "step_unknown": "unknown",
    "step_recovered": "recovered",
    "permissive_refused": "pending",
}


def _apply_step(snap: RunSnapshot, ev: Event, b: ev_.StepBody) -> None:
    uid = b.uid
    if b.stack and b.stack != snap.stack_id:
        uid = f"{b.stack}/{uid}"  # a lot's other stacks: "<stack id>/<uid>"; the first keeps bare uids
    prev = snap.steps.get(uid)
    status = _STEP_STATUS[ev.kind]
    if status == "pending" and prev is not None and prev.status != "pending":
        return  # a refused retry does not erase what already happened to the step
    given = b.model_fields_set
    fields: dict[str, Any] = {
        "tool": b.tool if "tool" in given else (prev.tool if prev else None),
        "job_id": b.job_id if "job_id" in given else (prev.job_id if prev else None),
        "kind": prev.kind if prev else None,
        "tool_job_before": prev.tool_job_before if prev else None,
    }
    match b:
        case ev_.StepStarted():
            fields.update(kind=b.tool_kind, tool_job_before=b.tool_job_before)
        case ev_.StepCompleted():
            fields.update(result=b.result, outcome=b.outcome)
        case ev_.StepRecovered():
            fields.update(result=b.result, outcome=b.outcome)
            if b.outcome == "NOT_STARTED":
                status = "pending"  # the tool never saw the start: the step must still run
        case ev_.StepFailed():
            fields.update(error=b.error, reason=b.reason)
        case ev_.StepUnknown():
            fields.update(reason=b.reason)
        case ev_.PermissiveRefused():
            fields.update(reason=f"{b.interlock}: {b.reason}")
    snap.steps[uid] = StepRecord(uid=uid, status=status, seq=ev.seq, **fields)


def _apply(snap: RunSnapshot, ev: Event) -> None:
    if ev.kind in _STEP_STATUS:
        b = ev.body
        assert isinstance(b, ev_.StepBody)
        _apply_step(snap, ev, b)
        return
    match ev.body:
        case ev_.RunCreated() as b:
            snap.created = True
            for name in ("flow", "wafers", "line", "time_scale", "stack_id", "stacks", "pools", "rule"):
                if name in b.model_fields_set:
                    setattr(snap, name, getattr(b, name))
        case ev_.StateChanged() as b:
            snap.state = RunState(b.to)
            if snap.state == RunState.HOLDING:
                snap.held_reason = held_reason_for(b.who, b.why)
            elif snap.state not in HELD_STATES:
                snap.held_reason = None
        case ev_.BypassGranted() as b:
            snap.bypasses.append(BypassRecord(interlock=b.interlock, role=b.role, reason=b.reason,
                                              expires_at=b.expires_at, who=b.who, seq=ev.seq, ts=ev.ts))
        case ev_.StackScrapped() as b:
            snap.scrapped = [*snap.scrapped, b.stack]
        case ev_.AlarmSeen():
            snap.alarms.append({**ev.data, "seq": ev.seq, "ts": ev.ts})
        case ev_.TravelerFiled() as b:
            snap.traveler = b.first()


def rebuild(journal_or_events: Journal | Path | Iterable[Event]) -> RunSnapshot:
    """The run's state from a live Journal, a journal file (read without locking) or a list of events."""
    if isinstance(journal_or_events, Journal):
        events: Iterable[Event] = journal_or_events.events()
        run_id: str | None = journal_or_events.run_id
    elif isinstance(journal_or_events, Path):
        events, run_id = read_events(journal_or_events), read_run_id(journal_or_events)
    else:
        events, run_id = journal_or_events, None
    snap: RunSnapshot | None = RunSnapshot(run_id=run_id) if run_id else None
    for ev in events:
        if snap is None:
            snap = RunSnapshot(run_id=ev.run_id)
        _apply(snap, ev)
        snap.last_seq = ev.seq
    if snap is None:
        raise ValueError("cannot rebuild a run from an empty journal (no run id)")
    return snap
