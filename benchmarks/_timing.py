"""Timing shared by the transport benchmarks: driver and raw runs alternate in blocks so machine
drift (other processes on a 2-core box) hits both sides alike."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

BLOCK = 50
WARMUP = 20
Op = Callable[[], Awaitable[Any]]


async def timed(op: Op, count: int) -> float:
    t0 = time.perf_counter()
    for _ in range(count):
        await op()
    return time.perf_counter() - t0


async def compare(transport: str, driver_once: Op, raw_once: Op, n: int) -> dict[str, Any]:
    """Mean ms of each side over n calls, and the driver/raw ratio."""
    await timed(driver_once, WARMUP)
    await timed(raw_once, WARMUP)
    driver_s = raw_s = 0.0
    done = 0
    while done < n:
        block = min(BLOCK, n - done)
        raw_s += await timed(raw_once, block)
        driver_s += await timed(driver_once, block)
        done += block
    driver_ms, raw_ms = driver_s / n * 1000, raw_s / n * 1000
    return {"transport": transport, "driver_ms": round(driver_ms, 4), "raw_ms": round(raw_ms, 4),
            "ratio": round(driver_ms / raw_ms, 3)}
