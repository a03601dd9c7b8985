"""Executes an expanded flow on a line's tools: permissives, run interlocks, journal, traveler.

Per step: permissives -> journal `step_started` (the intent, with the job id and the tool's last job
id) -> start -> wait with the run interlocks watching every poll -> journal `step_completed` -> only
then the traveler. A step whose end was not seen (alarm, lost link, controller crash) stays in doubt
until the tool is asked about that job id (`resolve`): a completed job is recorded and never re-run,
a job the tool never received is started, anything else marks the wafer UNKNOWN and holds the run.

What a failure does (the run-state table the README documents):
  permissive refused            -> HELD (interlock, reason); retried on restart
  tool alarm / band trip        -> HELD; an alarmed job stays in doubt, a band trip aborts the job
  door opened / EMO mid-step    -> tool job aborted, wafer ABORTED, run ABORTED
  lost link / timeout mid-step  -> wafer UNKNOWN until the tool answers; HELD
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from drivers.errors import CommandRejected, JobAborted, ToolAlarm, ToolError
from drivers.logs import log_context
from drivers.tool import JobOutcome, Tool, ToolStatus, new_job_id
from sequencer.control import RunControl, RunState
from sequencer.interlocks import (
    Action,
    Bypass,
    BypassRefused,
    InterlockTripped,
    StepContext,
    check_bypassable,
    evaluate_permissives,
    watch,
)
from sequencer.journal import Journal
from sequencer.traveler import E90State, Stack, apply_step, set_state, wafer_permissive

log = logging.getLogger(__name__)
Observer = Callable[[str, Any, dict[str, Any]], None]
TERMINAL = (RunState.STOPPED, RunState.ABORTED, RunState.COMPLETE)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class InDoubt:
    """A started step whose end the sequencer has not seen."""

    def __init__(self, tool: str, job_id: int, tool_job_before: int) -> None:
        self.tool, self.job_id, self.tool_job_before = tool, job_id, tool_job_before


class Engine:
    def __init__(
        self,
        *,
        run_id: str,
        steps: list[Any],
        stack: Stack,
        tools: dict[str, Tool[Any, Any]],
        journal: Journal,
        control: RunControl,
        completed: set[str] | None = None,
        in_doubt: dict[str, InDoubt] | None = None,
        bypasses: list[Bypass] | None = None,
        observer: Observer | None = None,
    ) -> None:
        self.run_id, self.steps, self.stack = run_id, steps, stack
        self.tools, self.journal, self.control = tools, journal, control
        self.completed = completed or set()
        self.in_doubt = in_doubt or {}
        self.bypasses = bypasses or []
        self.observer = observer or (lambda _e, _s, _i: None)
        self._changed = asyncio.Event()
        self._running: tuple[Any, Tool[Any, Any], int] | None = None  # step, tool, job id
        self._aborter: asyncio.Task[None] | None = None
        control.subscribe(self._on_transition)

    def grant_bypass(self, interlock: str, role: str, reason: str, who: str, minutes: float) -> str | None:
        """Operator bypass of one non-safety interlock: role, reason, expiry; journaled. None if granted."""
        try:
            check_bypassable(interlock)
            bypass = Bypass(interlock=interlock, role=role, reason=reason, who=who,
                            expires_at=datetime.now(UTC) + timedelta(minutes=minutes))
        except (BypassRefused, ValueError) as exc:
            return str(exc).splitlines()[0] if isinstance(exc, BypassRefused) else f"bypass refused: {exc}"
        self.journal.append("bypass", interlock=interlock, role=role, reason=reason, who=who,
                            expires_at=bypass.expires_at.isoformat())
        self.bypasses.append(bypass)
        return None

    # --- the loop --------------------------------------------------------------------------------
    async def execute(self) -> RunState:
        with log_context(run=self.run_id):
            for step in self.steps:
                while step.uid not in self.completed:
                    if not await self._checkpoint():
                        return await self._wind_down()
                    with log_context(step=step.uid):
                        await self._step(step)
            if not await self._checkpoint():
                return await self._wind_down()
            # COMPLETING: the caller files the traveler and the claims check, then completes
            return self.control.command("complete", who="sequencer", why="all steps done")

    async def _checkpoint(self) -> bool:
        """At a step boundary: settle HOLDING/UNHOLDING, wait while HELD; False to stop here."""
        while True:
            state = self.control.state
            if state is RunState.EXECUTE:
                return True
            if state in (RunState.HOLDING, RunState.UNHOLDING, RunState.STARTING):
                self.control.state_complete(why="at a step boundary")
            elif state is RunState.HELD:
                self._changed.clear()
                await self._changed.wait()
            else:
                return False

    async def _wind_down(self) -> RunState:
        if self._aborter is not None:
            await self._aborter
        if self.control.state in (RunState.STOPPING, RunState.ABORTING):
            self.control.state_complete(why="nothing left in a chamber")
        return self.control.state

    def _on_transition(self, old: RunState, new: RunState) -> None:
        self._changed.set()
        if new is RunState.ABORTING and self._running is not None:
            _step, tool, _job = self._running
            self._aborter = asyncio.get_running_loop().create_task(self._abort_tool(tool))

    async def _abort_tool(self, tool: Tool[Any, Any]) -> None:
        try:
            await tool.abort()
        except ToolError as exc:
            log.error("abort of %s failed: %s", tool.name, exc)

    # --- one step --------------------------------------------------------------------------------
    async def _step(self, step: Any) -> None:
        if step.kind is None:
            self._complete(step, None, "-", 0, {})
            return
        if step.uid in self.in_doubt:
            await self._resolve(step)
            return
        name, tool = self._tool_for(step)
        try:
            status = await tool.status()
        except ToolError as exc:
            self._hold(step, "tool_reachable", f"{name} does not answer: {exc}")
            return
        if not self._permitted(step, name, status):
            return
        job_id = new_job_id()
        self.journal.append("step_started", uid=step.uid, tool=name, kind=step.kind, job_id=job_id,
                            tool_job_before=status.job_id, recipe=step.recipe.model_dump(mode="json"))
        self.in_doubt[step.uid] = InDoubt(name, job_id, status.job_id)
        set_state(self.stack, step.wafer, E90State.IN_PROCESS)
        self.observer("started", step, {"tool": name, "job_id": job_id})
        try:
            await tool.start(step.recipe, job_id=job_id)
        except CommandRejected as exc:  # the tool refused: nothing ran
            self.in_doubt.pop(step.uid)
            set_state(self.stack, step.wafer, E90State.NEEDS_PROCESSING)
            self.journal.append("step_failed", uid=step.uid, tool=name, job_id=job_id,
                                error="CommandRejected", reason=exc.reason, started=False)
            self._hold(step, "tool_accepts_start", exc.reason)
            return
        except ToolError as exc:
            self._unknown(step, name, job_id, f"start of job {job_id} not confirmed: {exc}")
            return
        await self._await_job(step, name, tool, job_id)

    def _permitted(self, step: Any, name: str, status: ToolStatus) -> bool:
        ctx = StepContext(step, name, status, wafer_permissive(self.stack, step))
        refusals = evaluate_permissives(ctx, self.bypasses)
        for r in refusals:
            if r.bypassed_by is not None:
                self.journal.append("bypass_used", uid=step.uid, interlock=r.interlock, reason=r.reason,
                                    role=r.bypassed_by.role, who=r.bypassed_by.who)
        blocking = [r for r in refusals if r.bypassed_by is None]
        for r in blocking:
            self.journal.append("permissive_refused", uid=step.uid, interlock=r.interlock, reason=r.reason)
        if blocking:
            self._hold(step, blocking[0].interlock, "; ".join(r.reason for r in blocking))
        return not blocking

    async def _await_job(self, step: Any, name: str, tool: Tool[Any, Any], job_id: int) -> None:
        async def monitor(status: ToolStatus) -> None:
            trip = watch(step.kind, step.recipe, status, self.bypasses)
            if trip is not None:
                raise InterlockTripped(trip)

        self._running = (step, tool, job_id)
        try:
            result = await tool.wait(job_id, step.recipe, monitor=monitor)
        except InterlockTripped as exc:
            await self._tripped(step, name, tool, job_id, exc)
        except JobAborted as exc:
            self._failed(step, name, job_id, "JobAborted", exc.reason, E90State.ABORTED)
            if not self.control.abort_requested():
                self._hold(step, "job_aborted", exc.reason)
        except ToolAlarm as exc:
            self._hold(step, "tool_alarm", f"{name}: alarm {exc.alarm_id}: {exc.text}")  # stays in doubt
        except ToolError as exc:
            self._unknown(step, name, job_id, f"{type(exc).__name__}: {exc.reason}")
        else:
            self._complete(step, result.model_dump(exclude={"tool", "job_id"}), name, job_id, {})
        finally:
            self._running = None

    async def _tripped(self, step: Any, name: str, tool: Tool[Any, Any], job_id: int,
                       exc: InterlockTripped) -> None:
        trip = exc.trip
        self.journal.append("interlock_tripped", uid=step.uid, interlock=trip.interlock, reason=trip.reason,
                            action=trip.action.value)
        if trip.interlock == "tool_alarm":  # the tool paused its own job: its fate is the operator's call
            self._hold(step, trip.interlock, trip.reason)
            return
        await self._abort_tool(tool)  # a band trip or a safety input: stop processing this wafer now
        self._failed(step, name, job_id, "InterlockTripped", trip.reason, E90State.ABORTED)
        if trip.action is Action.ABORT:
            self.control.command("abort", who=f"interlock:{trip.interlock}", why=trip.reason)
        else:
            self._hold(step, trip.interlock, trip.reason)

    # --- in-doubt steps --------------------------------------------------------------------------
    async def _resolve(self, step: Any) -> None:
        doubt = self.in_doubt[step.uid]
        tool = self.tools[doubt.tool]
        try:
            status = await tool.status()
        except ToolError as exc:
            self._hold(step, "tool_reachable", f"{doubt.tool} silent about job {doubt.job_id}: {exc}")
            return
        if status.job_id == doubt.job_id:
            self.journal.append("step_recovered", uid=step.uid, tool=doubt.tool, job_id=doubt.job_id,
                                outcome=str(status.job_outcome))
            if status.job_outcome is JobOutcome.COMPLETED:
                result = await tool.job_result(doubt.job_id)
                values = result.model_dump(exclude={"tool", "job_id"})
                self._complete(step, values, doubt.tool, doubt.job_id, {"recovered": True})
            elif status.job_outcome is JobOutcome.RUNNING and status.alarm is None:
                set_state(self.stack, step.wafer, E90State.IN_PROCESS)
                await self._await_job(step, doubt.tool, tool, doubt.job_id)
            elif status.job_outcome is JobOutcome.RUNNING:
                self._hold(step, "tool_alarm", f"{doubt.tool}: alarm {status.alarm.id}: {status.alarm.text}"
                           if status.alarm else "paused")
            else:
                self._failed(step, doubt.tool, doubt.job_id, "JobEnded", f"job ended {status.job_outcome}",
                             E90State.ABORTED)
                self._hold(step, "job_ended", f"job {doubt.job_id} on {doubt.tool}: {status.job_outcome}")
        elif status.job_id == doubt.tool_job_before and status.job_outcome is not JobOutcome.RUNNING:
            self.journal.append("step_recovered", uid=step.uid, tool=doubt.tool, job_id=doubt.job_id,
                                outcome="NOT_STARTED")  # the start never reached the tool: safe to start
            del self.in_doubt[step.uid]
            set_state(self.stack, step.wafer, E90State.NEEDS_PROCESSING)
        else:
            self._unknown(step, doubt.tool, doubt.job_id,
                          f"{doubt.tool} reports job {status.job_id}, neither ours ({doubt.job_id}) "
                          f"nor its previous one ({doubt.tool_job_before})")

    # --- outcomes --------------------------------------------------------------------------------
    def _complete(self, step: Any, result: dict[str, Any] | None, tool: str, job_id: int,
                  extra: dict[str, Any]) -> None:
        # deferred: committed with the next event; if a crash loses it, resume asks the tool
        self.journal.append_deferred("step_completed", uid=step.uid, tool=tool, job_id=job_id,
                                     result=result, **extra)
        self.in_doubt.pop(step.uid, None)
        apply_step(self.stack, step, result, tool=tool, at=now_iso())
        self.completed.add(step.uid)
        self.observer("completed", step, {"tool": tool, "result": result})

    def _failed(self, step: Any, tool: str, job_id: int, error: str, reason: str, state: E90State) -> None:
        self.journal.append("step_failed", uid=step.uid, tool=tool, job_id=job_id, error=error, reason=reason,
                            wafer_state=state.value)
        self.in_doubt.pop(step.uid, None)
        set_state(self.stack, step.wafer, state)
        self.observer("failed", step, {"tool": tool, "reason": reason})

    def _unknown(self, step: Any, tool: str, job_id: int, reason: str) -> None:
        self.journal.append("step_unknown", uid=step.uid, tool=tool, job_id=job_id, reason=reason)
        set_state(self.stack, step.wafer, E90State.UNKNOWN)
        self._hold(step, "outcome_unknown", f"outcome of {step.uid} on {tool} unknown: {reason}")

    def _hold(self, step: Any, interlock: str, reason: str) -> None:
        self.observer("held", step, {"interlock": interlock, "reason": reason})
        if self.control.state is RunState.EXECUTE:
            self.control.command("hold", who=f"interlock:{interlock}", why=f"{step.uid}: {reason}")

    def _tool_for(self, step: Any) -> tuple[str, Tool[Any, Any]]:
        for name, tool in self.tools.items():
            if tool.kind == step.kind:
                return name, tool
        raise ToolError("line", f"no tool of kind {step.kind} for step {step.uid}")
