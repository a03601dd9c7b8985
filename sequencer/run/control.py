"""ISA-88 / PackML run control: the states a run passes through and the commands that move it.

Operators (and interlocks) issue commands: start, hold, restart (unhold), stop (finish what is in the
chamber, start nothing new), abort (safe state now), reset. The engine issues `complete` when the flow
is done and signals state completion ("sc") when the work of an acting state (STARTING, HOLDING,
UNHOLDING, STOPPING, ABORTING, COMPLETING, RESETTING) is finished. Every transition is journaled
before it takes effect, so the journal never shows a run in a state it did not reach.

Departures from PackML, on purpose: no SUSPEND (a wafer line starves by waiting, not by suspending), no
CLEARING (`reset` from ABORTED acknowledges the abort and goes straight to RESETTING), and COMPLETE
accepts only `reset` (a finished run cannot be stopped or aborted after the fact).

The engine must call `state_complete()` for acting states; nothing here completes them by itself.
Call everything from the sequencer's event-loop thread.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from enum import StrEnum

from drivers.errors import WaferlineError
from sequencer.run import events as ev_
from sequencer.run.journal import Journal

log = logging.getLogger(__name__)


class RunState(StrEnum):
    IDLE = "IDLE"
    STARTING = "STARTING"
    EXECUTE = "EXECUTE"
    HOLDING = "HOLDING"
    HELD = "HELD"
    UNHOLDING = "UNHOLDING"
    STOPPING = "STOPPING"
    STOPPED = "STOPPED"
    ABORTING = "ABORTING"
    ABORTED = "ABORTED"
    COMPLETING = "COMPLETING"
    COMPLETE = "COMPLETE"
    RESETTING = "RESETTING"


S = RunState
SC = "sc"
COMMANDS = ("start", "hold", "restart", "stop", "abort", "reset", "complete", SC)
OPERATOR_COMMANDS = ("hold", "restart", "stop", "abort", "reset")

# state -> command -> next state; the whole state machine, read by the report and the docs.
TRANSITIONS: dict[RunState, dict[str, RunState]] = {
    S.IDLE: {"start": S.STARTING, "stop": S.STOPPING, "abort": S.ABORTING},
    S.STARTING: {"stop": S.STOPPING, "abort": S.ABORTING, SC: S.EXECUTE},
    S.EXECUTE: {
        "hold": S.HOLDING, "stop": S.STOPPING, "abort": S.ABORTING, "complete": S.COMPLETING, SC: S.COMPLETING
    },
    S.HOLDING: {"stop": S.STOPPING, "abort": S.ABORTING, SC: S.HELD},
    S.HELD: {"restart": S.UNHOLDING, "stop": S.STOPPING, "abort": S.ABORTING},
    S.UNHOLDING: {"hold": S.HOLDING, "stop": S.STOPPING, "abort": S.ABORTING, SC: S.EXECUTE},
    S.STOPPING: {"abort": S.ABORTING, SC: S.STOPPED},
    S.STOPPED: {"reset": S.RESETTING, "abort": S.ABORTING},
    S.ABORTING: {SC: S.ABORTED},
    S.ABORTED: {"reset": S.RESETTING},
    S.COMPLETING: {"stop": S.STOPPING, "abort": S.ABORTING, SC: S.COMPLETE},
    S.COMPLETE: {"reset": S.RESETTING},
    S.RESETTING: {"stop": S.STOPPING, "abort": S.ABORTING, SC: S.IDLE},
}
HELD_STATES = frozenset({S.HOLDING, S.HELD})
_BLOCKING = frozenset({S.HOLDING, S.HELD, S.UNHOLDING})


def allowed_commands(state: RunState) -> list[str]:
    return list(TRANSITIONS[state])


def held_reason_for(who: str, why: str) -> str:
    """What a HELD run shows: the interlock or operator that held it and why."""
    return f"{who}: {why}" if why else who


class InvalidTransition(WaferlineError):
    """A command that the current state does not accept; names the state and what it does accept."""

    def __init__(self, state: RunState, command: str) -> None:
        self.state = state
        self.command = command
        self.allowed = allowed_commands(state)
        what = "unknown command" if command not in COMMANDS else "command"
        super().__init__(
            f"{what} {command!r} is not allowed in state {state}; allowed there: {', '.join(self.allowed)}"
        )


Listener = Callable[[RunState, RunState], None]


class RunControl:
    """The run's state machine, journaled. `state` and `held_reason` are read-only for callers."""

    def __init__(
        self, journal: Journal, state: RunState = RunState.IDLE, *, held_reason: str | None = None
    ) -> None:
        self.journal = journal
        self.state = RunState(state)
        self.held_reason: str | None = held_reason if self.state in HELD_STATES else None
        self._listeners: list[Listener] = []
        self._pending: list[tuple[RunState, RunState]] = []
        self._dispatching = False
        self._waiters: set[asyncio.Future[None]] = set()

    def command(self, command: str, *, who: str, why: str = "") -> RunState:
        """Validate, journal, then transition; returns the state this command moved to (a listener may
        have moved on already: read `state` for the current one). Raises InvalidTransition."""
        old = self.state
        new = TRANSITIONS[old].get(command)
        if new is None:
            raise InvalidTransition(old, command)
        self.journal.append(ev_.StateChanged(from_=old.value, to=new.value, command=command, who=who,
                                             why=why))
        self.state = new
        if new == S.HOLDING:
            self.held_reason = held_reason_for(who, why)
        elif new not in HELD_STATES:
            self.held_reason = None
        self._changed(old, new)
        return new

    def state_complete(self, *, who: str = "sequencer", why: str = "") -> RunState:
        """The acting state's work is done: HOLDING->HELD, STOPPING->STOPPED, ABORTING->ABORTED, ..."""
        return self.command(SC, who=who, why=why)

    async def wait_until_runnable(self) -> RunState:
        """Between steps: return at once in EXECUTE, wait out HOLDING/HELD/UNHOLDING, and return at once
        in any other state (STOPPING, ABORTING, terminal) so the engine can wind down."""
        while self.state in _BLOCKING:
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.add(fut)
            try:
                await fut
            finally:
                self._waiters.discard(fut)
        return self.state

    def abort_requested(self) -> bool:
        return self.state in (S.ABORTING, S.ABORTED)

    def stop_requested(self) -> bool:
        return self.state in (S.STOPPING, S.STOPPED)

    def hold_requested(self) -> bool:
        return self.state in HELD_STATES

    def allowed(self) -> list[str]:
        return allowed_commands(self.state)

    def subscribe(self, callback: Listener) -> None:
        """Call `callback(old, new)` after every transition, in order. A callback may issue commands
        (e.g. state_complete); their notifications follow once the current one reached every listener.
        A callback that raises is logged and skipped: the transition already happened."""
        self._listeners.append(callback)

    def _changed(self, old: RunState, new: RunState) -> None:
        for fut in self._waiters:
            if not fut.done():
                fut.set_result(None)
        self._pending.append((old, new))
        if self._dispatching:
            return
        self._dispatching = True
        try:
            while self._pending:
                before, after = self._pending.pop(0)
                for callback in list(self._listeners):
                    try:
                        callback(before, after)
                    except Exception:
                        log.exception("run-control listener %r failed on %s -> %s", callback, before, after)
        finally:
            self._dispatching = False
