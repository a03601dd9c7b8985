"""What an unattended run does when it is HELD: wait for an operator, fail, or abort (`--on-hold`).

A HELD run waits for an operator by default, which is right at a tool and wrong in CI or under a
scheduler with no one to answer. After `timeout_s` in HELD:
  wait  - keep waiting (the interactive default; the timeout is ignored);
  fail  - leave the run HELD and end the process with the HELD exit code: the journal, traveler,
          summary and report are filed, and `waferline resume` takes it up later;
  abort - abort the run (journaled as the sequencer's, with the hold's reason).
The countdown restarts on every entry into HELD (a restart that holds again gets a fresh timeout).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Literal

from sequencer.run.control import RunControl, RunState

OnHold = Literal["wait", "fail", "abort"]
ON_HOLD: tuple[OnHold, ...] = ("wait", "fail", "abort")


class HoldPolicy:
    """Watches one run's control; acts `timeout_s` after the run enters HELD."""

    def __init__(self, policy: OnHold = "wait", timeout_s: float = 0.0) -> None:
        if policy not in ON_HOLD:
            raise ValueError(f"on-hold: {policy!r} is not one of {list(ON_HOLD)}")
        if not timeout_s >= 0:
            raise ValueError(f"hold timeout: {timeout_s!r} s must be >= 0")
        self.policy, self.timeout_s = policy, timeout_s
        self._timer: asyncio.Task[None] | None = None

    def attach(self, control: RunControl, leave: Callable[[], None]) -> None:
        """Watch `control`; `leave()` makes the engine return while HELD (the `fail` policy)."""
        if self.policy == "wait":
            return

        def on_transition(_old: RunState, new: RunState) -> None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if new is RunState.HELD:
                self._timer = asyncio.get_running_loop().create_task(self._expire(control, leave))

        control.subscribe(on_transition)
        if control.state is RunState.HELD:  # resumed in HELD
            on_transition(RunState.HELD, RunState.HELD)

    async def _expire(self, control: RunControl, leave: Callable[[], None]) -> None:
        await asyncio.sleep(self.timeout_s)
        if control.state is not RunState.HELD:
            return
        if self.policy == "fail":
            leave()
        else:
            control.command("abort", who="sequencer (--on-hold abort)",
                            why=f"held {self.timeout_s:g} s with no operator: {control.held_reason}")

    async def close(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await timer
