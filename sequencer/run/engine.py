"""Executes a lot: N stacks through the expanded flow concurrently, over pools of tools.

Each stack walks the flow's steps in order (its wafers travel together); the stacks run side by side
and ask the dispatcher for a tool of each step's kind (dispatcher.py: lot order first). One process
job is one step of one stack (process_job.py). Run control is the lot's: a hold from any stack's
interlock holds the run - jobs already in a chamber finish, nothing new starts, and the run is HELD
once no job is in a chamber; restart resumes every stack where it stood. Stop finishes what is in the
chambers; abort aborts every running job now.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from drivers.errors import ToolError
from drivers.logs import log_context
from drivers.tool import Tool
from sequencer.process.flow import Step
from sequencer.process.traveler import Stack
from sequencer.run import events as ev_
from sequencer.run.abort import abort_lot
from sequencer.run.control import RunControl, RunState
from sequencer.run.dispatcher import Dispatcher, DispatchRule
from sequencer.run.gcpause import frozen_heap
from sequencer.run.interlocks import Bypass, BypassRefused, check_bypassable, recipe_verdict, safety_names
from sequencer.run.journal import Journal
from sequencer.run.process_job import InDoubt, Key, Lot, Observer, ProcessJobs, now_iso
from sequencer.run.scrap import scrap_stack

__all__ = ["Engine", "InDoubt", "Key", "Observer", "now_iso", "pools_of"]
log = logging.getLogger(__name__)
STATUS_SHARE_S = 0.5


def pools_of(tools: dict[str, Tool[Any, Any]]) -> dict[str, list[str]]:
    """The line's pools: tool names by kind, in line order."""
    pools: dict[str, list[str]] = {}
    for name, tool in tools.items():
        pools.setdefault(tool.kind, []).append(name)
    return pools


class Engine:
    def __init__(
        self,
        *,
        run_id: str,
        steps: list[Step],
        stacks: list[Stack],
        tools: dict[str, Tool[Any, Any]],
        journal: Journal,
        control: RunControl,
        completed: set[Key] | None = None,
        in_doubt: dict[Key, InDoubt] | None = None,
        bypasses: list[Bypass] | None = None,
        observer: Observer | None = None,
        rule: DispatchRule = "most_steps_left",
        scrapped: set[str] | None = None,
    ) -> None:
        self.lot = Lot(
            run_id=run_id, steps=steps, stacks={s.stack_id: s for s in stacks}, tools=tools, journal=journal,
            control=control, dispatcher=Dispatcher(pools_of(tools)),
            observer=observer or (lambda _e, _s, _i: None), completed=completed or set(),
            in_doubt=in_doubt or {}, bypasses=bypasses or [], rule=rule, scrapped=scrapped or set())
        for step in steps:  # judged and dumped now, not on the wake-up after each job
            if step.recipe is not None:
                recipe_verdict(step.recipe)
                self.lot.recipe_json(step)
        self.jobs = ProcessJobs(self.lot)
        self.safety = safety_names(n for tool in tools.values() for n in tool.safety_inputs)
        self.bands = {band.name for tool in tools.values() for band in tool.run_bands}
        self.control = control
        self._changed = asyncio.Event()
        self._aborters: list[asyncio.Task[None]] = []
        self._in_chamber = 0  # process jobs past their start decision and not yet ended
        self._leave_held = False  # the --on-hold fail policy: return from HELD, the run stays resumable
        control.subscribe(self._on_transition)

    @property
    def stacks(self) -> list[Stack]:
        return list(self.lot.stacks.values())

    def grant_bypass(self, interlock: str, role: str, reason: str, who: str, minutes: float) -> str | None:
        """Operator bypass of one non-safety interlock: role, reason, expiry; journaled. None if granted."""
        try:
            check_bypassable(interlock, self.safety, self.bands)
            bypass = Bypass(interlock=interlock, role=role, reason=reason, who=who,
                            expires_at=datetime.now(UTC) + timedelta(minutes=minutes))
        except (BypassRefused, ValueError) as exc:
            return str(exc).splitlines()[0] if isinstance(exc, BypassRefused) else f"bypass refused: {exc}"
        self.lot.journal.append(ev_.BypassGranted(interlock=interlock, role=role, reason=reason, who=who,
                                                  expires_at=bypass.expires_at.isoformat()))
        self.lot.bypasses.append(bypass)
        return None

    def scrap(self, stack: str, who: str, why: str) -> str | None:
        """Operator disposition: take one stack of a HELD lot out (scrap.py). None if done."""
        return scrap_stack(self.lot, stack, who, why)

    async def tool_command(self, name: str, op: str, who: str) -> tuple[str | None, dict[str, Any] | None]:
        """An operator's status, abort or reset (alarm clear) of one of the run's tools, over the
        connection the run owns; journaled with who asked and what the tool answered."""
        tool = self.lot.tools.get(name)
        if tool is None:
            return f"{name} is not a tool of this run; it holds {sorted(self.lot.tools)}", None
        try:
            if op == "abort":
                await tool.abort()
            elif op == "reset":
                await tool.reset()
            # a status the run itself read at most STATUS_SHARE_S ago answers a status request: an HMI
            # asking every half second costs the run no round trip (after an abort or reset: a fresh read)
            recent = tool.recent_status(STATUS_SHARE_S) if op == "status" else None
            status = recent if recent is not None else await tool.status()
        except ToolError as exc:
            error = f"{type(exc).__name__}: {exc}"
            if op != "status":
                self.lot.journal.append(ev_.ToolCommand(tool=name, op=op, who=who, ok=False, answer=error))
            return error, None
        if op != "status":
            answer = f"{status.state}, job {status.job_id} {status.job_outcome}"
            self.lot.journal.append(ev_.ToolCommand(tool=name, op=op, who=who, ok=True, answer=answer))
        return None, status.model_dump(mode="json")

    def leave_held(self) -> None:
        """End execute() while the run is HELD, leaving it HELD in the journal for a later resume."""
        self._leave_held = True
        self._changed.set()
        self._changed = asyncio.Event()

    # --- the lot ---------------------------------------------------------------------------------
    async def execute(self) -> RunState:
        """Run every stack to the end of the flow, or until run control stops or aborts the lot."""
        with log_context(run=self.lot.run_id), frozen_heap():
            for (stack_id, _uid), doubt in self.lot.in_doubt.items():
                self.lot.dispatcher.reserve(doubt.tool, stack_id)  # only its own stack may ask it
            tasks = [asyncio.create_task(self._run_stack(order, stack), name=f"stack {stack.stack_id}")
                     for order, stack in enumerate(self.stacks)]
            try:
                await asyncio.gather(*tasks)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            if self._aborters:
                await asyncio.gather(*self._aborters)
            if self.control.state is RunState.EXECUTE and len(self.lot.scrapped) == len(self.lot.stacks):
                self.control.command("stop", who="sequencer", why="every stack of the lot was scrapped")
            if self.control.state in (RunState.STOPPING, RunState.ABORTING):
                self.control.state_complete(why="nothing left in a chamber")
            elif self.control.state is RunState.EXECUTE and self._all_done():
                # COMPLETING: the caller files the travelers and the claims check, then completes
                self.control.command("complete", who="sequencer", why="all steps done")
            return self.control.state

    async def _run_stack(self, order: int, stack: Stack) -> None:
        for step in self.lot.steps:
            key = (stack.stack_id, step.uid)
            while key not in self.lot.completed:
                running = self.control.state is RunState.EXECUTE  # the common case, without a coroutine
                if not (running or await self._checkpoint()) or stack.stack_id in self.lot.scrapped:
                    return
                where = step.uid if len(self.lot.stacks) == 1 else f"{stack.stack_id}/{step.uid}"
                with log_context(step=where):
                    self._in_chamber += 1
                    try:
                        await self.jobs.run(order, stack, step)
                    finally:
                        self._in_chamber -= 1
        await self._checkpoint()  # a last HOLDING settles to HELD here if this stack ended the lot's jobs

    def _all_done(self) -> bool:
        """Every step of every stack still in the lot is done."""
        return all((s, step.uid) in self.lot.completed for s in self.lot.stacks if s not in self.lot.scrapped
                   for step in self.lot.steps)

    async def _checkpoint(self) -> bool:
        """At a step boundary: settle STARTING/HOLDING/UNHOLDING, wait while HELD; False to stop here."""
        while True:
            state = self.control.state
            if state is RunState.EXECUTE:
                return True
            if state in (RunState.STARTING, RunState.UNHOLDING):
                self.control.state_complete(why="at a step boundary")
            elif state is RunState.HOLDING and self._in_chamber == 0:
                self.control.state_complete(why="no process job in a chamber")
            elif state is RunState.HELD and self._leave_held:
                return False
            elif state in (RunState.HOLDING, RunState.HELD):
                changed = self._changed
                await changed.wait()
            else:
                return False

    def _on_transition(self, old: RunState, new: RunState) -> None:
        self._changed.set()
        self._changed = asyncio.Event()
        if new is not RunState.EXECUTE:
            self.lot.dispatcher.preempt()  # jobs waiting for a tool go back to their checkpoint
        if new is RunState.ABORTING:
            self._aborters.append(asyncio.get_running_loop().create_task(abort_lot(self.jobs)))
