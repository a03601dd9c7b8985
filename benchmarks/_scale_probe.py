"""What the scale benchmark counts, per transport, without touching any driver's protocol: the tool's
status() is wrapped (an instance attribute shadows the method, so the driver's own polls go through
it) and run()'s monitor sees every polled status of a running job.

A poll is missed when the gap between two consecutive status replies of one running job exceeds
2x the poll interval, or when a status request times out or errors.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from drivers.tool import Tool, ToolStatus

TICK_S = 0.010


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list; 0.0 for an empty one."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


@dataclass
class TransportStats:
    tools: int = 0
    connected: int = 0
    jobs: int = 0
    polls: int = 0  # status replies seen by run()'s monitor: the polls of running jobs
    status_reads: int = 0  # every status(): polls plus start()'s idle check and recovery reads
    rtt_s: list[float] = field(default_factory=list)
    missed_gap: int = 0
    missed_error: int = 0
    worst_gap_s: float = 0.0
    errors: Counter[str] = field(default_factory=Counter)

    def summary(self, elapsed_s: float) -> dict[str, Any]:
        return {
            "tools": self.tools, "connected": self.connected, "jobs": self.jobs, "polls": self.polls,
            "polls_per_s": round(self.polls / elapsed_s, 1) if elapsed_s else 0.0,
            "status_reads": self.status_reads,
            "rtt_p50_ms": round(percentile(self.rtt_s, 50) * 1000, 2),
            "rtt_p99_ms": round(percentile(self.rtt_s, 99) * 1000, 2),
            "rtt_max_ms": round(max(self.rtt_s, default=0.0) * 1000, 2),
            "missed": self.missed_gap + self.missed_error,
            "missed_pct": round((self.missed_gap + self.missed_error) / max(1, self.polls) * 100, 1),
            "missed_gap": self.missed_gap,
            "missed_error": self.missed_error, "worst_gap_ms": round(self.worst_gap_s * 1000, 1),
            "errors": dict(self.errors),
        }


class ToolProbe:
    """Instruments one driver: times its status() and watches the gaps between a job's polls."""

    def __init__(self, tool: Tool[Any, Any], stats: TransportStats) -> None:
        self.tool = tool
        self.stats = stats
        self.max_gap_s = 2 * tool.poll_interval_s
        self._last: float | None = None
        status = tool.status

        async def timed_status() -> ToolStatus:
            t0 = time.perf_counter()
            try:
                st = await status()
            except Exception:
                self.stats.missed_error += 1
                raise
            self.stats.rtt_s.append(time.perf_counter() - t0)
            self.stats.status_reads += 1
            return st

        tool.status = timed_status  # type: ignore[method-assign]

    def job_begins(self) -> None:
        self._last = None

    async def on_poll(self, status: ToolStatus) -> None:
        """run()'s monitor: called with every polled status of the running job."""
        now = time.perf_counter()
        self.stats.polls += 1
        if self._last is not None:
            gap = now - self._last
            self.stats.worst_gap_s = max(self.stats.worst_gap_s, gap)
            if gap > self.max_gap_s:
                self.stats.missed_gap += 1
        self._last = now


class LagTicker:
    """A 10 ms ticker on the controller's loop: how late each tick wakes is the loop's lag."""

    def __init__(self) -> None:
        self.late_s: list[float] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="scale-lag-ticker")

    async def _run(self) -> None:
        while True:
            t0 = time.perf_counter()
            await asyncio.sleep(TICK_S)
            self.late_s.append(max(0.0, time.perf_counter() - t0 - TICK_S))

    async def stop(self) -> dict[str, float]:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        return self.figures()

    def figures(self) -> dict[str, float]:
        late = self.late_s
        return {"ticks": len(late), "max_ms": round(max(late, default=0.0) * 1000, 1),
                "p99_ms": round(percentile(late, 99) * 1000, 1),
                "p50_ms": round(percentile(late, 50) * 1000, 2)}
