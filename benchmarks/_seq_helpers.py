"""Instrumentation for the sequencer benchmark: count and time every protocol round trip of a tool,
time the engine's step loop and its journal appends inside `start_run`, and the reference costs
(a journal append back to back, a poll sleep), all in the benchmark's own process and event loop.

Round trips are timed at the tool's `status()` (channel read + decoding into a ToolStatus: what a
permissive check or a poll costs), at the channel's other reads (job results) and its commands.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import sequencer.run.run as run_module
from drivers.line import LineConfig, ToolConfig
from drivers.profiles.base import Value
from drivers.tool import Tool, ToolStatus
from sequencer.run.control import RunState
from sequencer.run.engine import Engine
from sequencer.run.journal import Journal

T = TypeVar("T")


@dataclass
class Tally:
    """Round trips of one side of one measurement, per tool: how many and how long (seconds)."""

    count: Counter[tuple[str, str]] = field(default_factory=Counter)  # (op, tool) -> n
    seconds: defaultdict[tuple[str, str], float] = field(default_factory=lambda: defaultdict(float))
    tools: list[Tool[Any, Any]] = field(default_factory=list)

    def polls(self) -> int:
        """Status polls of running jobs (the drivers count them): each after a job's first follows a
        poll sleep; permissive reads and start checks are not polls."""
        return sum(t.polls for t in self.tools)

    def add(self, op: str, tool: str, dt: float) -> None:
        self.count[op, tool] += 1
        self.seconds[op, tool] += dt

    def n(self, op: str, tool: str | None = None) -> int:
        return sum(v for (o, t), v in self.count.items() if o == op and tool in (None, t))

    def io_s(self) -> float:
        """Wall time spent inside round trips (status reads, result reads, commands)."""
        return sum(self.seconds.values())


def instrument(tool: Tool[Any, Any], tally: Tally) -> Tool[Any, Any]:
    """Wrap this tool's status() and its channel's read/command so each round trip lands in `tally`.

    Instance attributes shadow the methods, so the driver's own calls (start's idle check, every
    poll of wait) go through the wrappers too. A read of the status variables is already timed by
    status(); any other read is a job-result read.
    """
    who, channel = tool.name, tool.channel
    tally.tools.append(tool)
    status, read, command = tool.status, channel.read, channel.command

    async def timed_status() -> ToolStatus:
        t0 = time.perf_counter()
        try:
            return await status()
        finally:
            tally.add("status", who, time.perf_counter() - t0)

    async def timed_read(names: Sequence[str]) -> dict[str, Value]:
        t0 = time.perf_counter()
        try:
            return await read(names)
        finally:
            if "state" not in names:
                tally.add("result", who, time.perf_counter() - t0)

    async def timed_command(name: str, args: Mapping[str, Value] | None = None) -> None:
        t0 = time.perf_counter()
        try:
            await command(name, args)
        finally:
            tally.add("command", who, time.perf_counter() - t0)

    tool.status = timed_status  # type: ignore[method-assign]
    channel.read = timed_read  # type: ignore[method-assign]
    channel.command = timed_command  # type: ignore[method-assign]
    return tool


@dataclass
class LoopTimer:
    """Wall seconds spent in Engine.execute (the step loop, without connecting and filing) and in
    the journal appends made inside it."""

    seconds: float = 0.0
    journal_s: float = 0.0
    journal_n: int = 0
    in_loop: bool = False


@contextmanager
def instrumented_sequencer(tally: Tally) -> Iterator[LoopTimer]:
    """While open, start_run builds instrumented tools, its engine loop and journal writes that commit
    (`append`, `commit`) are timed."""
    make_tool, execute = run_module.make_tool, Engine.execute
    append, commit = Journal.append, Journal.commit
    timer = LoopTimer()

    def make(cfg: ToolConfig, line: LineConfig, base: Path | None = None) -> Tool[Any, Any]:
        return instrument(make_tool(cfg, line, base), tally)

    async def timed_execute(self: Engine) -> RunState:
        t0 = time.perf_counter()
        timer.in_loop = True
        try:
            return await execute(self)
        finally:
            timer.in_loop = False
            timer.seconds += time.perf_counter() - t0

    def timed(write: Callable[..., T]) -> Callable[..., T]:
        def timed_write(self: Journal, kind: str, /, **data: Any) -> T:
            t0 = time.perf_counter()
            try:
                return write(self, kind, **data)
            finally:
                if timer.in_loop:
                    timer.journal_s += time.perf_counter() - t0
                    timer.journal_n += 1
        return timed_write

    run_module.make_tool = make
    Engine.execute = timed_execute  # type: ignore[method-assign]
    Journal.append, Journal.commit = timed(append), timed(commit)  # type: ignore[method-assign]
    try:
        yield timer
    finally:
        run_module.make_tool = make_tool
        Engine.execute = execute  # type: ignore[method-assign]
        Journal.append, Journal.commit = append, commit  # type: ignore[method-assign]


def journal_append_s(recipe: Mapping[str, Any], result: Mapping[str, Any], n: int = 2000) -> float:
    """Mean seconds of one Journal.append (sync 'normal', WAL) of step events, back to back: the hot
    figure; in a run each append follows an idle wait for a tool and costs several times more."""
    with tempfile.TemporaryDirectory(prefix="waferline-bench-journal-") as tmp, \
            Journal(Path(tmp) / "journal.sqlite", "20260101-000000-0000") as journal:
        for _ in range(50):  # warm the page cache and the WAL
            journal.append("note", text="warm-up")
        t0 = time.perf_counter()
        for i in range(n):
            if i % 2:
                journal.append("step_completed", uid=f"A{i}", tool="coater1", job_id=i, result=dict(result))
            else:
                journal.append("step_started", uid=f"A{i}", tool="coater1", kind="coater", job_id=i,
                               tool_job_before=i - 1, recipe=json.loads(json.dumps(recipe)))
        return (time.perf_counter() - t0) / n


async def poll_sleep_s(interval: float, n: int = 200) -> float:
    """Mean wall seconds of one `asyncio.sleep(interval)` in this loop (epoll rounds up to 1 ms)."""
    t0 = time.perf_counter()
    for _ in range(n):
        await asyncio.sleep(interval)
    return (time.perf_counter() - t0) / n


def leftover_tasks() -> list[str]:
    """Tasks still pending besides the caller (aiomqtt's per-message Queue.get ones are transient)."""
    me = asyncio.current_task()
    return sorted(
        t.get_name() + ":" + getattr(t.get_coro(), "__qualname__", "?")
        for t in asyncio.all_tasks()
        if t is not me and not t.done() and getattr(t.get_coro(), "__qualname__", "") != "Queue.get"
    )
