"""Virtual time: physics runs in tool seconds; `time_scale` tool seconds pass per wall second."""

from __future__ import annotations

import asyncio
import time


class VirtualClock:
    def __init__(self, time_scale: float = 1.0) -> None:
        if time_scale <= 0:
            raise ValueError("time_scale must be > 0")
        self.time_scale = time_scale
        self._t0 = time.monotonic()

    def now(self) -> float:
        """Tool seconds since the clock started."""
        return (time.monotonic() - self._t0) * self.time_scale

    def wall(self, tool_s: float) -> float:
        return tool_s / self.time_scale

    async def sleep(self, tool_s: float) -> None:
        await asyncio.sleep(max(0.0, tool_s) / self.time_scale)

    async def sleep_until(self, tool_t: float) -> None:
        await self.sleep(tool_t - self.now())
