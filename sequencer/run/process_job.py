"""One process job: one step of one stack on one tool - permissives, start, watch, outcome.

Per job: permissives -> journal `step_started` (the intent, with the job id and the tool's last job id)
-> start -> wait with the run interlocks watching every poll -> journal `step_completed` -> only then
the traveler. A job whose end was not seen (alarm, lost link, controller crash) stays in doubt until its
tool is asked about that job id (`resolve`): a completed job is recorded and never re-run, a job the tool
never received is started, anything else marks the wafer UNKNOWN and holds the run.

What a failure does (the run-state table the README documents):
  permissive refused            -> HELD (interlock, reason); retried on restart
  tool alarm / band trip        -> HELD; an alarmed job stays in doubt, a band trip aborts the job
  door opened / EMO mid-step    -> tool job aborted, wafer ABORTED, run ABORTED
  lost link / timeout mid-step  -> wafer UNKNOWN until the tool answers; HELD
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from drivers.errors import CommandRejected, JobAborted, ToolAlarm, ToolError
from drivers.tool import Tool, ToolStatus, new_job_id
from sequencer.process.flow import Step
from sequencer.process.traveler import E90State, Stack, apply_step, set_state, wafer_permissive
from sequencer.run import events as ev_
from sequencer.run.clock import utc_now_us
from sequencer.run.control import RunControl, RunState
from sequencer.run.dispatcher import Dispatcher, DispatchRule, priority
from sequencer.run.interlocks import (
    Action,
    Bypass,
    InterlockTripped,
    Refusal,
    StepContext,
    evaluate_permissives,
    safety_trip,
    watch,
)
from sequencer.run.journal import Journal
from sequencer.run.recovery import InDoubt, Recovery, judge, state_before, wafer_state

log = logging.getLogger(__name__)
Observer = Callable[[str, Any, dict[str, Any]], None]
Key = tuple[str, str]  # (stack id, step uid): one process job of the lot


def now_iso() -> str:
    """The traveler's `at`: UTC ISO-8601 with microseconds."""
    return utc_now_us()


@dataclass
class Lot:
    """What every process job of a run shares: the stacks, the tools, the journal, run control."""

    run_id: str
    steps: list[Step]
    stacks: dict[str, Stack]
    tools: dict[str, Tool[Any, Any]]
    journal: Journal
    control: RunControl
    dispatcher: Dispatcher
    observer: Observer
    completed: set[Key] = field(default_factory=set)
    in_doubt: dict[Key, InDoubt] = field(default_factory=dict)
    bypasses: list[Bypass] = field(default_factory=list)
    running: dict[Key, Tool[Any, Any]] = field(default_factory=dict)  # jobs in a chamber now
    resolving: set[Key] = field(default_factory=set)  # in-doubt jobs whose tool is being asked now
    rule: DispatchRule = "most_steps_left"
    scrapped: set[str] = field(default_factory=set)  # stacks an operator took out of the lot
    recipes: dict[str, dict[str, Any]] = field(default_factory=dict)  # step uid -> recipe as journaled

    def recipe_json(self, step: Step) -> dict[str, Any] | None:
        """The step's recipe in its journal form, dumped once per run (recipes are frozen)."""
        if step.recipe is None:
            return None
        if step.uid not in self.recipes:
            self.recipes[step.uid] = step.recipe.model_dump(mode="json")
        return self.recipes[step.uid]


class ProcessJobs:
    """Runs, resolves and records process jobs of a lot; run control decides what runs next."""

    def __init__(self, lot: Lot) -> None:
        self.lot = lot

    async def run(self, order: int, stack: Stack, step: Step) -> None:
        """One attempt at a step: returns when it completed, failed, held the run or was preempted."""
        lot, key = self.lot, (stack.stack_id, step.uid)
        if step.kind is None:
            self._complete(stack, step, None, "-", 0, {})
            return
        if key in lot.in_doubt:
            name = lot.in_doubt[key].tool
            lot.dispatcher.reserve(name, stack.stack_id)
            try:
                await self.resolve(stack, step)
            finally:
                if key not in lot.in_doubt:
                    lot.dispatcher.release(name, stack.stack_id)
            return
        rank = priority(lot.rule, order, step.index)
        granted = (lot.dispatcher.try_acquire(step.kind, stack.stack_id)  # a free tool: no coroutine
                   or await lot.dispatcher.acquire(step.kind, stack.stack_id, rank))
        if granted is None:
            return  # the run left EXECUTE while this job waited for a tool
        try:
            await self._start(stack, step, granted, lot.tools[granted])
        finally:
            if key not in lot.in_doubt:
                lot.dispatcher.release(granted, stack.stack_id)

    async def _start(self, stack: Stack, step: Step, name: str, tool: Tool[Any, Any]) -> None:
        lot = self.lot
        # The traveler's part of the permissives is judged before any I/O, right after the previous
        # step wrote the traveler: only run control changes it meanwhile, and a run that left EXECUTE
        # starts nothing (checked below).
        wafer_reason = wafer_permissive(stack, step)
        try:  # the poll that saw the tool's last job end is fresh enough to PASS the permissives;
            # a refusal is always judged on a fresh read
            recent = tool.recent_status()
            refusals = self._refusals(step, name, recent, wafer_reason) if recent is not None else []
            status = recent
            if status is None or any(r.bypassed_by is None for r in refusals):
                status = await tool.status()
                refusals = self._refusals(step, name, status, wafer_reason)
        except ToolError as exc:
            self._hold(stack, step, "tool_reachable", f"{name} does not answer: {exc}")
            return
        if lot.control.state is not RunState.EXECUTE or not self._permitted(stack, step, name, refusals):
            return
        job_id = new_job_id()
        lot.journal.commit(ev_.StepStarted(stack=stack.stack_id, uid=step.uid, tool=name, tool_kind=step.kind,
                                           job_id=job_id, tool_job_before=status.job_id,
                                           tool_boot=status.boot_id, recipe=lot.recipe_json(step)))
        lot.in_doubt[(stack.stack_id, step.uid)] = InDoubt(name, job_id, status.job_id, status.boot_id)
        set_state(stack, step.wafer, E90State.IN_PROCESS)
        lot.observer("started", step, {"tool": name, "job_id": job_id, "stack": stack.stack_id})
        try:
            await tool.start(step.recipe, job_id=job_id, checked=status)
        except CommandRejected as exc:  # the tool refused: nothing ran
            lot.in_doubt.pop((stack.stack_id, step.uid))
            set_state(stack, step.wafer, state_before(stack, step))
            lot.journal.append(ev_.StepFailed(stack=stack.stack_id, uid=step.uid, tool=name, job_id=job_id,
                                              error="CommandRejected", reason=exc.reason, started=False))
            self._hold(stack, step, "tool_accepts_start", exc.reason)
            return
        except ToolError as exc:
            self._unknown(stack, step, name, job_id, f"start of job {job_id} not confirmed: {exc}")
            return
        if lot.control.abort_requested():  # the abort came while the start was on its way
            await abort_tool(tool)
        await self._await_job(stack, step, name, tool, job_id)

    def _refusals(self, step: Step, name: str, status: ToolStatus, wafer_reason: str | None) -> list[Refusal]:
        """Every permissive the step fails on this status, bypassed ones included (journaled)."""
        return evaluate_permissives(StepContext(step, name, status, wafer_reason), self.lot.bypasses)

    def _permitted(self, stack: Stack, step: Step, name: str, refusals: list[Refusal]) -> bool:
        lot = self.lot
        for r in refusals:
            if r.bypassed_by is not None:
                lot.journal.append(ev_.BypassUsed(stack=stack.stack_id, uid=step.uid, tool=name,
                                                  interlock=r.interlock, reason=r.reason,
                                                  role=r.bypassed_by.role, who=r.bypassed_by.who))
        blocking = [r for r in refusals if r.bypassed_by is None]
        for r in blocking:
            lot.journal.append(ev_.PermissiveRefused(stack=stack.stack_id, uid=step.uid, tool=name,
                                                     interlock=r.interlock, reason=r.reason))
        if blocking:
            self._hold(stack, step, blocking[0].interlock, "; ".join(r.reason for r in blocking))
        return not blocking

    async def _await_job(self, stack: Stack, step: Step, name: str, tool: Tool[Any, Any],
                         job_id: int) -> None:
        lot, key = self.lot, (stack.stack_id, step.uid)

        async def monitor(status: ToolStatus) -> None:
            trip = watch(tool.run_bands, step.recipe, status, lot.bypasses)
            if trip is not None:
                raise InterlockTripped(trip)

        lot.running[key] = tool
        try:
            result = await tool.wait(job_id, step.recipe, monitor=monitor)
        except InterlockTripped as exc:
            await self._tripped(stack, step, name, tool, job_id, exc)
        except JobAborted as exc:
            self._failed(stack, step, name, job_id, "JobAborted", exc.reason, E90State.ABORTED)
            if not lot.control.abort_requested():
                self._hold(stack, step, "job_aborted", exc.reason)
        except ToolAlarm as exc:  # stays in doubt: the paused job's fate is the operator's call
            self._hold(stack, step, "tool_alarm", f"{name}: alarm {exc.alarm_id}: {exc.text}")
        except ToolError as exc:
            self._unknown(stack, step, name, job_id, f"{type(exc).__name__}: {exc.reason}")
        else:
            values = self._judged(stack, step, name, job_id, result)
            if values is not None:
                self._complete(stack, step, values, name, job_id, {})
        finally:
            lot.running.pop(key, None)

    async def _tripped(self, stack: Stack, step: Step, name: str, tool: Tool[Any, Any], job_id: int,
                       exc: InterlockTripped) -> None:
        trip = exc.trip
        self.lot.journal.append(ev_.InterlockTripped(stack=stack.stack_id, uid=step.uid, tool=name,
                                                     interlock=trip.interlock, reason=trip.reason,
                                                     action=trip.action.value))
        if trip.interlock == "tool_alarm":  # the tool paused its own job: its fate is the operator's call
            self._hold(stack, step, trip.interlock, f"{name}: {trip.reason}")
            return
        await abort_tool(tool)  # a band trip or a safety input: stop processing this wafer now
        self._failed(stack, step, name, job_id, "InterlockTripped", trip.reason, E90State.ABORTED)
        if trip.action is Action.ABORT:
            self.lot.control.command("abort", who=f"interlock:{trip.interlock}", why=trip.reason)
        else:
            self._hold(stack, step, trip.interlock, trip.reason)

    # --- in-doubt jobs ---------------------------------------------------------------------------
    async def resolve(self, stack: Stack, step: Step) -> None:
        """Ask the tool about an in-doubt job and act on its answer (recovery.py); journaled as
        step_recovered with the outcome, the wafer's E90 state set from it the way resume rebuilds it."""
        key = (stack.stack_id, step.uid)
        if key in self.lot.resolving or key not in self.lot.in_doubt:
            return
        self.lot.resolving.add(key)
        try:
            await self._resolve(stack, step)
        finally:
            self.lot.resolving.discard(key)

    async def _resolve(self, stack: Stack, step: Step) -> None:
        lot, key = self.lot, (stack.stack_id, step.uid)
        doubt = lot.in_doubt[key]
        tool = lot.tools[doubt.tool]
        ids = {"stack": stack.stack_id, "uid": step.uid, "tool": doubt.tool, "job_id": doubt.job_id}
        try:
            status = await tool.status()
        except ToolError as exc:
            why = f"{doubt.tool} silent about job {doubt.job_id}: {exc}"
            if lot.control.abort_requested():  # the run ends: the wafer's fate is the operator's
                self._unknown(stack, step, doubt.tool, doubt.job_id, why)
            else:
                self._hold(stack, step, "tool_reachable", why)
            return
        verdict = judge(doubt, status)
        if verdict.outcome is Recovery.UNKNOWN:
            self._unknown(stack, step, doubt.tool, doubt.job_id, verdict.reason)
            return
        lot.journal.append(ev_.StepRecovered(**ids, outcome=verdict.outcome.value, reason=verdict.reason))
        set_state(stack, step.wafer, wafer_state(stack, step, verdict.outcome))
        match verdict.outcome:
            case Recovery.COMPLETED:
                result = await tool.job_result(doubt.job_id)
                values = self._judged(stack, step, doubt.tool, doubt.job_id, result)
                if values is not None:
                    self._complete(stack, step, values, doubt.tool, doubt.job_id, {"recovered": True})
            case Recovery.RUNNING:
                await self._await_job(stack, step, doubt.tool, tool, doubt.job_id)
            case Recovery.PAUSED:
                self._hold(stack, step, "tool_alarm", verdict.reason)
            case Recovery.NOT_STARTED:
                del lot.in_doubt[key]
            case _:  # ABORTED / FAILED
                self._failed(stack, step, doubt.tool, doubt.job_id, "JobEnded", verdict.reason,
                             E90State.ABORTED)
                trip = safety_trip(status)
                if trip is None:  # a hold is a no-op once the run is leaving EXECUTE
                    self._hold(stack, step, "job_ended", verdict.reason)
                elif not lot.control.abort_requested():  # ended on a door, EMO or safety alarm
                    lot.control.command("abort", who=f"interlock:{trip.interlock}", why=trip.reason)

    def _judged(self, stack: Stack, step: Step, tool: str, job_id: int, result: Any) -> dict[str, Any] | None:
        """The result's values if each is inside its check against the recipe's target (the kind's
        result_checks); else the step fails - wafer ABORTED, the hold naming value and band - and None."""
        values = {k: v for k, v in result.__dict__.items() if k not in ("tool", "job_id")}  # flat
        for check in self.lot.tools[tool].result_checks:
            why = check.check(step.recipe, values)
            if why is not None:
                self.lot.journal.append(ev_.ResultRejected(stack=stack.stack_id, uid=step.uid, tool=tool,
                                                           job_id=job_id, check=check.name, reason=why,
                                                           result=values))
                self._failed(stack, step, tool, job_id, "ResultOutOfBand", why, E90State.ABORTED)
                self._hold(stack, step, f"result:{check.name}", f"{tool}: {why}")
                return None
        return values

    # --- outcomes --------------------------------------------------------------------------------
    def _complete(self, stack: Stack, step: Step, result: dict[str, Any] | None, tool: str, job_id: int,
                  extra: dict[str, Any]) -> None:
        lot = self.lot
        # deferred: committed with the next event; if a crash loses it, resume asks the tool
        lot.journal.append_deferred(ev_.StepCompleted(stack=stack.stack_id, uid=step.uid, tool=tool,
                                                      job_id=job_id, result=result, **extra))
        lot.in_doubt.pop((stack.stack_id, step.uid), None)
        apply_step(stack, step, result, tool=tool, at=now_iso())
        lot.completed.add((stack.stack_id, step.uid))
        lot.observer("completed", step, {"tool": tool, "result": result, "stack": stack.stack_id})

    def _failed(self, stack: Stack, step: Step, tool: str, job_id: int, error: str, reason: str,
                state: E90State) -> None:
        self.lot.journal.append(ev_.StepFailed(stack=stack.stack_id, uid=step.uid, tool=tool, job_id=job_id,
                                               error=error, reason=reason, wafer_state=state.value))
        self.lot.in_doubt.pop((stack.stack_id, step.uid), None)
        set_state(stack, step.wafer, state)
        self.lot.observer("failed", step, {"tool": tool, "reason": reason, "stack": stack.stack_id})

    def mark_unknown(self, stack: Stack, step: Step, reason: str) -> None:
        """An in-doubt job whose tool cannot be asked now (e.g. an abort it did not confirm)."""
        doubt = self.lot.in_doubt[(stack.stack_id, step.uid)]
        self._unknown(stack, step, doubt.tool, doubt.job_id, reason)

    def _unknown(self, stack: Stack, step: Step, tool: str, job_id: int, reason: str) -> None:
        self.lot.journal.append(ev_.StepUnknown(stack=stack.stack_id, uid=step.uid, tool=tool, job_id=job_id,
                                                reason=reason))
        set_state(stack, step.wafer, E90State.UNKNOWN)
        self._hold(stack, step, "outcome_unknown", f"outcome of {step.uid} on {tool} unknown: {reason}")

    def _hold(self, stack: Stack, step: Step, interlock: str, reason: str) -> None:
        control = self.lot.control
        self.lot.observer("held", step, {"interlock": interlock, "reason": reason, "stack": stack.stack_id})
        if control.state is RunState.EXECUTE:
            where = step.uid if len(self.lot.stacks) == 1 else f"{stack.stack_id} {step.uid}"
            control.command("hold", who=f"interlock:{interlock}", why=f"{where}: {reason}")


async def abort_tool(tool: Tool[Any, Any]) -> None:
    try:
        await tool.abort()
    except ToolError as exc:
        log.error("abort of %s failed: %s", tool.name, exc)
