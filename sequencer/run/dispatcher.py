"""The dispatcher: which free tool of a pool runs which ready process job.

A lot of N stacks flows through a line that may hold several tools of a kind. Each stack is a chain of
steps (its wafers move together), so at any instant a stack has at most one ready step; it asks the
dispatcher for a tool of the step's kind and gets one when a tool of that pool is free.

The rule (documented in the README): **most work remaining first** - a free tool goes to the waiting
process job whose stack has the most steps still to run (the lowest step index: every stack of a lot
runs the same flow, so steps left stand for work left), ties to the earliest-released stack; among
free tools of a pool the one idle longest is taken. Why it keeps the bottleneck busy: no stack falls
behind and is left alone at the end with a long chain of steps that can use only one bottleneck tool at
a time while the rest of its pool idles; while many stacks are in the line, every pool has waiting
work. `lot_order` (earliest stack first everywhere) is the other rule a run may pick: on the pooled
line it starves the last stacks until the end, which then drain slowly while the bottleneck pool
idles (`python -m benchmarks.line --compare` measures both). The achieved throughput over the
bottleneck bound is reported per run (accounting.py).

A tool that holds an in-doubt job (its outcome not yet known) stays reserved for that job's stack:
another stack's job on it would overwrite the tool's last-job record that recovery asks about.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from dataclasses import dataclass, field
from typing import Literal

DispatchRule = Literal["most_steps_left", "lot_order"]
RULES: tuple[DispatchRule, ...] = ("most_steps_left", "lot_order")


def priority(rule: DispatchRule, stack_order: int, step_index: int) -> tuple[int, int]:
    """Smaller goes first: (steps done, lot order) or (lot order, steps done)."""
    return (step_index, stack_order) if rule == "most_steps_left" else (stack_order, step_index)


@dataclass(order=True)
class _Request:
    priority: tuple[int, int]
    seq: int
    kind: str = field(compare=False)
    owner: str = field(compare=False)
    future: asyncio.Future[str | None] = field(compare=False)


class Dispatcher:
    """Pools of tools by kind; grants free tools to waiting process jobs by priority."""

    def __init__(self, pools: dict[str, list[str]]) -> None:
        self.pools = {kind: list(names) for kind, names in pools.items()}
        self._kinds = {n: kind for kind, names in pools.items() for n in names}
        self._free_since = dict.fromkeys(self._kinds, 0.0)
        self._owner: dict[str, str] = {}  # tool -> the stack using or reserving it
        self._waiting: dict[str, list[_Request]] = {kind: [] for kind in pools}
        self._seq = itertools.count()

    def kind_of(self, tool: str) -> str:
        return self._kinds[tool]

    def reserve(self, tool: str, owner: str) -> None:
        """Give `tool` to `owner` now, whoever waits (recovery of an in-doubt job on it)."""
        holder = self._owner.get(tool)
        if holder is not None and holder != owner:
            raise RuntimeError(f"{tool} is held by {holder}, cannot reserve it for {owner}")
        self._owner[tool] = owner

    def owner(self, tool: str) -> str | None:
        return self._owner.get(tool)

    def try_acquire(self, kind: str, owner: str) -> str | None:
        """A free tool of `kind` for `owner` now if nobody waits for one, else None (then `acquire`)."""
        free = self._free(kind)
        if free is not None and not self._waiting[kind]:
            self._owner[free] = owner
            return free
        return None

    async def acquire(self, kind: str, owner: str, priority: tuple[int, int]) -> str | None:
        """A free tool of `kind` for `owner`, or None if `preempt()` called everyone back first."""
        free = self.try_acquire(kind, owner)
        if free is not None:
            return free
        request = _Request(priority, next(self._seq), kind, owner, asyncio.get_running_loop().create_future())
        heapq.heappush(self._waiting[kind], request)
        self._grant(kind)
        try:
            return await request.future
        except asyncio.CancelledError:
            self._drop(request)
            raise

    def release(self, tool: str, owner: str) -> None:
        """`owner` is done with `tool` (its job ended, or it never started): grant it to the next."""
        if self._owner.get(tool) != owner:
            return
        del self._owner[tool]
        self._free_since[tool] = time.monotonic()
        self._grant(self.kind_of(tool))

    def preempt(self) -> None:
        """Call every waiting job back (None): the run left EXECUTE, jobs return to their checkpoint."""
        for kind, queue in self._waiting.items():
            for request in queue:
                if not request.future.done():
                    request.future.set_result(None)
            self._waiting[kind] = []

    def busy(self) -> dict[str, str]:
        return dict(self._owner)

    # --- internals -------------------------------------------------------------------------------
    def _free(self, kind: str) -> str | None:
        free = [n for n in self.pools[kind] if n not in self._owner]
        return min(free, key=lambda n: self._free_since[n]) if free else None

    def _grant(self, kind: str) -> None:
        queue = self._waiting[kind]
        while queue:
            free = self._free(kind)
            if free is None:
                return
            request = heapq.heappop(queue)
            if request.future.done():  # cancelled or preempted meanwhile
                continue
            self._owner[free] = request.owner
            request.future.set_result(free)

    def _drop(self, request: _Request) -> None:
        queue = self._waiting[request.kind]
        if request in queue:
            queue.remove(request)
            heapq.heapify(queue)
        if request.future.done() and not request.future.cancelled():
            granted = request.future.result()
            if granted is not None:
                self.release(granted, request.owner)
