"""A run's timeline from its journal alone: process jobs, holds, down and blocked spans, point marks.

One pass over the events; times are tool seconds from the window start (see accounting.py for what the
window, down and blocked mean). Older journals (one stack, no `stack`/`tool` in step events) read the
same: a missing stack is run_created.stack_id, a missing tool is the step's job tool, its next start, or
a tool name in the reason text. The accounting and the Gantt chart both draw from this.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from pydantic import BaseModel

from sequencer.run import events as ev_
from sequencer.run.journal import Event

Outcome = Literal["completed", "failed", "rejected", "unknown", "not_started", "open"]
MarkKind = Literal["trip", "refused", "alarm", "unknown", "failed", "hold"]
Key = tuple[str, str]  # (stack id, step uid)
HELD = ("HOLDING", "HELD")
FINAL = ("ABORTED", "STOPPED", "COMPLETE")
DOWN_HOLDS = ("interlock:tool_alarm", "interlock:tool_reachable", "interlock:outcome_unknown")
NOT_RUN: tuple[Outcome, ...] = ("not_started", "rejected")


class Job(BaseModel):
    """One process job on a tool; times in tool seconds from the window start."""

    stack: str
    uid: str
    tool: str
    kind: str
    job_id: int
    start: float
    end: float
    outcome: Outcome
    recovered: bool = False
    reason: str | None = None
    productive: float = 0.0  # end - start minus the tool's down time inside it (0 if never run)


class Span(BaseModel):
    """A stretch of time (tool seconds from the window start): a hold, a down or a blocked period."""

    start: float
    end: float
    tool: str | None = None
    why: str = ""


class Mark(BaseModel):
    """A point event: a trip, a refused permissive, an alarm, a failed or unknown job, a hold."""

    at: float
    what: MarkKind
    tool: str | None
    stack: str | None
    uid: str | None
    text: str


def epoch(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


class Timeline:
    """Parse once; read the public lists and the run_created facts afterwards. `until` (ISO time) extends
    the window past the last event: a live run's report counts a hold up to now."""

    def __init__(self, events: list[Event], until: str | None = None) -> None:
        if not events:
            raise ValueError("an empty journal has no timeline")
        created = next((b for e in events if isinstance(b := e.body, ev_.RunCreated)), None)
        self.scale = float(created.time_scale or 1.0) if created else 1.0
        first = created.stack_id if created and created.stack_id else "S1"
        self.stacks: list[str] = list(created.stacks) if created and created.stacks else [first]
        self.default = created.stack_id if created and created.stack_id else self.stacks[0]
        self.steps: list[str] = list(created.steps) if created else []
        self.pools: dict[str, list[str]] = {k: list(v) for k, v in created.pools.items()} if created else {}
        opening = next((e for e in events if isinstance(b := e.body, ev_.StateChanged) and b.to == "EXECUTE"),
                       next((e for e in events if e.kind == "step_started"), events[0]))
        self.origin_ts, self.t0 = opening.ts, epoch(opening.ts)
        self.end = max(0.0, self.t(events[-1].ts), self.t(until) if until else 0.0)
        self.final_state = next((b.to for e in reversed(events) if isinstance(b := e.body, ev_.StateChanged)),
                                "IDLE")
        starts = [(e, b) for e in events if isinstance(b := e.body, ev_.StepStarted)]
        self.tools_seen = {str(b.tool): b.tool_kind or "?" for _, b in starts}
        self._starts = [(e.seq, self.key(e), str(b.tool)) for e, b in starts]
        self.jobs: list[Job] = []
        self.holds: list[Span] = []
        self.downs: list[Span] = []
        self.refusals: list[Span] = []  # a refused permissive blocks its tool until the tool's next start
        self.waits: list[Span] = []  # a refused/failed/unknown step waiting for its tool
        self.marks: list[Mark] = []
        self.done: dict[str, set[str]] = {}  # stack -> uids completed (kind-less loads included)
        self._open: dict[Key, Job] = {}
        self._last: dict[Key, Job] = {}
        self._down: dict[str, tuple[float, str]] = {}
        self._refused: dict[str, tuple[float, str]] = {}
        self._waiting: dict[Key, tuple[str, float]] = {}
        self._held: tuple[float, str] | None = None
        for ev in events:
            self._apply(ev, max(0.0, self.t(ev.ts)))
        self._close_all(self.end, "no outcome journaled yet (the run goes on, or its sequencer died)")

    # --- lookups ---------------------------------------------------------------------------------
    def t(self, ts: str) -> float:
        return (epoch(ts) - self.t0) * self.scale

    def key(self, ev: Event) -> Key:
        b = ev.body
        if isinstance(b, ev_.StepBody | ev_.AlarmSeen):
            return b.stack or self.default, str(b.uid)
        return self.default, "None"

    def known_tools(self) -> set[str]:
        return set(self.tools_seen) | {n for names in self.pools.values() for n in names}

    def kind_of(self, tool: str) -> str:
        pool = next((k for k, names in self.pools.items() if tool in names), None)
        return pool or self.tools_seen.get(tool, "?")

    def named_in(self, text: str) -> str | None:
        return next((n for n in sorted(self.known_tools()) if re.search(rf"\b{re.escape(n)}\b", text)), None)

    def tool_of(self, ev: Event) -> str | None:
        b = ev.body
        tool = b.tool if isinstance(b, ev_.StepBody | ev_.AlarmSeen) else None
        if tool and tool != "-":
            return tool
        key = self.key(ev)
        job = self._open.get(key) or self._last.get(key)
        if job is not None:
            return job.tool
        later = next((t for seq, k, t in self._starts if k == key and seq > ev.seq), None)
        return later or self.named_in(b.reason if isinstance(b, ev_.StepBody) else "")

    # --- span bookkeeping ------------------------------------------------------------------------
    def _mark(self, at: float, what: MarkKind, tool: str | None, ev: Event, text: str) -> None:
        b = ev.body
        has_step = isinstance(b, ev_.StepBody) or (isinstance(b, ev_.AlarmSeen) and b.uid is not None)
        stack, uid = self.key(ev) if has_step else (None, None)
        self.marks.append(Mark(at=at, what=what, tool=tool, stack=stack, uid=uid, text=text))

    def _go_down(self, tool: str | None, at: float, why: str) -> None:
        if tool is not None and tool not in self._down:
            self._down[tool] = (at, why)

    def _up(self, tool: str, at: float) -> None:
        if tool in self._down:
            start, why = self._down.pop(tool)
            self.downs.append(Span(start=start, end=at, tool=tool, why=why))

    def _unrefuse(self, tool: str, at: float) -> None:
        if tool in self._refused:
            start, why = self._refused.pop(tool)
            self.refusals.append(Span(start=start, end=at, tool=tool, why=why))

    def _wait(self, key: Key, tool: str | None, at: float) -> None:
        if tool is not None and key not in self._waiting:
            self._waiting[key] = (tool, at)

    def _end_wait(self, key: Key, at: float) -> None:
        if key in self._waiting:
            tool, start = self._waiting.pop(key)
            self.waits.append(Span(start=start, end=at, tool=tool, why=f"{key[0]} {key[1]}"))

    def _close_job(self, key: Key, at: float, outcome: Outcome, reason: str | None) -> Job | None:
        job = self._open.pop(key, None)
        if job is not None:
            job.end, job.outcome, job.reason = max(at, job.start), outcome, reason
            self._last[key] = job
        return job

    def _close_all(self, at: float, why: str) -> None:
        for key in list(self._open):
            self._close_job(key, at, "open", why)
        for key in list(self._waiting):
            self._end_wait(key, at)
        if self._held is not None:
            self.holds.append(Span(start=self._held[0], end=at, why=self._held[1]))
            self._held = None
        for tool in list(self._down):
            self._up(tool, at)
        for tool in list(self._refused):
            self._unrefuse(tool, at)

    # --- events ----------------------------------------------------------------------------------
    def _apply(self, ev: Event, at: float) -> None:
        key = self.key(ev)
        match ev.body:
            case ev_.StepStarted() as b:
                name = str(b.tool)
                self._up(name, at)
                self._unrefuse(name, at)
                self._end_wait(key, at)
                job = Job(stack=key[0], uid=key[1], tool=name, kind=b.tool_kind or self.kind_of(name),
                          job_id=b.job_id or 0, start=at, end=at, outcome="open")
                self._open[key] = job
                self.jobs.append(job)
            case ev_.StepCompleted() as b:
                self.done.setdefault(key[0], set()).add(key[1])
                self._end_wait(key, at)
                if (b.tool if "tool" in b.model_fields_set else "-") != "-":  # "-": a kind-less load
                    self._completed(key, at, b.recovered)
            case ev_.StepFailed() as b:
                tool = self.tool_of(ev)
                self._close_job(key, at, "failed" if b.started is not False else "rejected", b.reason)
                self._wait(key, tool, at)
                self._mark(at, "failed", tool, ev, f"{b.error}: {b.reason}")
            case ev_.StepUnknown() as b:
                tool = self.tool_of(ev)
                self._close_job(key, at, "unknown", b.reason)
                self._go_down(tool, at, f"outcome unknown: {b.reason}")
                self._wait(key, tool, at)
                self._mark(at, "unknown", tool, ev, b.reason)
            case ev_.StepRecovered() as b if b.outcome == "NOT_STARTED":
                self._close_job(key, at, "not_started", "the tool never received the start")
            case ev_.PermissiveRefused() as b:
                tool, why = self.tool_of(ev), f"{b.interlock}: {b.reason}"
                if tool is not None and tool not in self._refused:
                    self._refused[tool] = (at, why)
                self._wait(key, tool, at)
                self._mark(at, "refused", tool, ev, why)
            case ev_.InterlockTripped() as b:
                text = f"{b.interlock}: {b.reason} ({b.action})"
                tool = self.tool_of(ev)
                self._go_down(tool, at, text)
                self._mark(at, "trip", tool, ev, text)
            case ev_.AlarmSeen() as b:
                text = f"alarm {b.alarm_id}: {b.text}"
                tool = self.tool_of(ev)
                self._go_down(tool, at, text)
                self._mark(at, "alarm", tool, ev, text)
            case ev_.StateChanged() as b:
                self._state(ev, b, at)

    def _completed(self, key: Key, at: float, recovered: bool) -> None:
        job = self._close_job(key, at, "completed", None)
        if job is None:  # resolved after an unknown outcome: the tool had done it after all
            job, recovered = self._last.get(key), True
        if job is not None:
            job.outcome, job.recovered = "completed", job.recovered or recovered

    def _state(self, ev: Event, b: ev_.StateChanged, at: float) -> None:
        to, who, why = b.to, b.who, b.why
        if to in HELD and self._held is None:
            self._held = (at, f"{who}: {why}")
            self._mark(at, "hold", None, ev, f"{who}: {why}")
            if who in DOWN_HOLDS:
                self._go_down(self.named_in(why), at, why)
        elif to not in HELD and self._held is not None:
            self.holds.append(Span(start=self._held[0], end=at, why=self._held[1]))
            self._held = None
            for tool in list(self._down):
                self._up(tool, at)
        if to in FINAL:
            self._close_all(at, f"never resolved: the run ended {to}")
