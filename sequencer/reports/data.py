"""Everything a run report shows, read from the run directory alone: journal, traveler.json, summary.json.

Both layouts load: a lot (traveler.json {"run_id", "stacks": [...]}, summary "stacks": [...], step events
with `stack`) and the older single stack (traveler.json is one Stack, summary has top-level claims). A
run that has not filed its travelers yet (still running, crashed, HELD) falls back to the last
`traveler` event in the journal, else shows no cross-section: a report never invents a wafer's layers.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from sequencer.process.traveler import Stack
from sequencer.reports.accounting import LineAccounting, account
from sequencer.reports.timeline import FINAL, epoch
from sequencer.run import events as ev_
from sequencer.run.journal import Event, JournalError, read_events
from sequencer.run.rundir import JOURNAL, SUMMARY, TRAVELER, live_pid
from sequencer.run.state import rebuild

HISTORY_KINDS = ("permissive_refused", "interlock_tripped", "alarm", "step_failed", "step_unknown",
                 "step_recovered", "bypass", "bypass_used", "stack_scrapped", "state")
HISTORY_STATES = ("HOLDING", "UNHOLDING", "STOPPING", "ABORTING")


class Claim(BaseModel):
    claim: int
    title: str
    ok: bool
    detail: str


class StackView(BaseModel):
    """One stack of the lot: its traveler (None if none was filed) and its claims check."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    stack_id: str
    short: str  # "S2": the id without the run id
    traveler: Stack | None
    claims: list[Claim]
    claims_ok: bool
    completed: bool
    scrapped: str | None = None  # who scrapped it and why, if an operator took it out of the lot


class HistoryRow(BaseModel):
    """One line of the interlock and alarm history."""

    ts: str
    hours: float  # tool hours since the window opened
    stack: str
    step: str
    tool: str
    interlock: str
    reason: str
    action: str
    who: str


class RunData(BaseModel):
    run_id: str
    directory: Path
    flow: str
    line: str
    wafers: int
    state: str
    held_reason: str | None
    steps: list[str]
    stacks: list[StackView]
    accounting: LineAccounting
    history: list[HistoryRow]

    def short(self, stack_id: str | None) -> str:
        return short_id(self.run_id, stack_id)

    @property
    def size(self) -> str:
        """'4 wafer(s)', or a package flow's members ('carrier1, chip1, chip2, carrier2')."""
        traveler = next((s.traveler for s in self.stacks if s.traveler is not None), None)
        if traveler is not None and any(w.form != "wafer" for w in traveler.wafers):
            return ", ".join(w.name or str(w.index) for w in traveler.wafers)
        return f"{self.wafers} wafer(s)"


def short_id(run_id: str, stack_id: str | None) -> str:
    if not stack_id:
        return "-"
    return stack_id[len(run_id) + 1:] if stack_id.startswith(f"{run_id}-") else stack_id


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _travelers(directory: Path, events: list[Event]) -> list[Stack]:
    filed = _json(directory / TRAVELER)
    if filed is None:
        last = next((b for e in reversed(events) if isinstance(b := e.body, ev_.TravelerFiled)), None)
        filed = None if last is None else {"stacks": last.stacks or ([last.stack] if last.stack else [])}
    raw = filed.get("stacks", [filed]) if isinstance(filed, dict) else []
    out = []
    for doc in raw:
        try:
            out.append(Stack.model_validate(doc))
        except ValidationError:
            continue  # a traveler this version cannot read: shown as "no traveler", never guessed
    return out


def _claims(summary: Any, stack_id: str, first: str) -> list[Claim]:
    if not isinstance(summary, dict):
        return []
    for entry in summary.get("stacks") or []:
        if entry.get("stack_id") == stack_id:
            return [Claim.model_validate(c) for c in entry.get("claims") or []]
    if stack_id == first:
        return [Claim.model_validate(c) for c in summary.get("claims") or []]
    return []


def _tool_finder(events: list[Event], default: str) -> dict[tuple[str, str], str]:
    """(stack, uid) -> the tool of its last start: older journals omit the tool of refusals and trips."""
    return {(b.stack or default, b.uid): str(b.tool) for e in events
            if isinstance(b := e.body, ev_.StepStarted)}


def _row(b: ev_.Body) -> tuple[str, str, str, str] | None:
    """(interlock, reason, action, who) for a history event, None to skip it."""
    match b:
        case ev_.PermissiveRefused():
            return b.interlock, b.reason, "permissive refused: not started", "sequencer"
        case ev_.InterlockTripped():
            return b.interlock, b.reason, f"tripped: {b.action}", "sequencer"
        case ev_.AlarmSeen():
            return f"alarm {b.alarm_id}", b.text, "tool alarm", "tool"
        case ev_.StepFailed():
            state = b.wafer_state or ("not started" if b.started is False else "?")
            return b.error, b.reason, f"job failed; wafer {state}", "sequencer"
        case ev_.StepUnknown():
            return "outcome_unknown", b.reason, "wafer UNKNOWN", "sequencer"
        case ev_.StepRecovered():
            return "recovery", f"job {b.job_id}", f"tool says {b.outcome}", "sequencer"
        case ev_.BypassGranted():
            return b.interlock, b.reason, f"bypass granted ({b.role}) until {b.expires_at}", b.who
        case ev_.StackScrapped():
            return "disposition", b.why, f"stack scrapped: wafers {b.wafers} ABORTED", b.who
        case ev_.BypassUsed():
            return b.interlock, b.reason, f"bypassed ({b.role})", b.who
        case ev_.StateChanged() if b.to in HISTORY_STATES:
            lock = b.who.removeprefix("interlock:") if b.who.startswith("interlock:") else "-"
            return lock, b.why, f"run {b.command}: {b.from_} -> {b.to}", b.who
    return None


def history(events: list[Event], acc: LineAccounting, run_id: str, default: str) -> list[HistoryRow]:
    tools = _tool_finder(events, default)
    t0 = epoch(acc.window_start)
    rows = []
    for ev in events:
        b = ev.body
        row = _row(b) if ev.kind in HISTORY_KINDS else None
        if row is None:
            continue
        stack = uid = ""
        if isinstance(b, ev_.StepBody | ev_.AlarmSeen):
            stack, uid = b.stack or default, str(b.uid)
        elif isinstance(b, ev_.StackScrapped):
            stack = b.stack or default
        tool = "-"
        if isinstance(b, ev_.StepBody | ev_.AlarmSeen):
            tool = b.tool or tools.get((stack, uid), "-")
        hours = (epoch(ev.ts) - t0) * acc.time_scale / 3600
        rows.append(HistoryRow(ts=ev.ts, hours=hours, stack=short_id(run_id, stack) if stack else "-",
                               step=uid or "-", tool=tool, interlock=row[0], reason=row[1],
                               action=row[2], who=row[3]))
    return rows


def load_run(directory: Path) -> RunData:
    """Read one run directory; raises JournalError if it holds no readable journal."""
    directory = Path(directory)
    events = read_events(directory / JOURNAL)
    if not events:
        raise JournalError(f"journal {directory / JOURNAL} has no events yet: nothing to report")
    snap = rebuild(events)
    going = snap.state not in FINAL and live_pid(directory) is not None  # its window reaches up to now
    acc = account(events, datetime.now(UTC).isoformat() if going else None)
    summary = _json(directory / SUMMARY)
    travelers = {s.stack_id: s for s in _travelers(directory, events)}
    ids = acc.stacks + [sid for sid in travelers if sid not in acc.stacks]
    first = ids[0] if ids else snap.stack_id
    scraps = {b.stack: f"scrapped by {b.who}: {b.why}" for e in events
              if isinstance(b := e.body, ev_.StackScrapped)}
    stacks = []
    for sid in ids:
        claims = _claims(summary, sid, first)
        stacks.append(StackView(stack_id=sid, short=short_id(snap.run_id, sid), traveler=travelers.get(sid),
                                claims=claims, claims_ok=bool(claims) and all(c.ok for c in claims),
                                completed=sid in acc.stacks_completed, scrapped=scraps.get(sid)))
    created = next((b for e in events if isinstance(b := e.body, ev_.RunCreated)), None)
    return RunData(
        run_id=snap.run_id, directory=directory, flow=snap.flow, line=snap.line, wafers=snap.wafers,
        state=str(snap.state), held_reason=snap.held_reason, steps=list(created.steps) if created else [],
        stacks=stacks, accounting=acc, history=history(events, acc, snap.run_id, first))
