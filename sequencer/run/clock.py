"""UTC timestamps for the journal and the traveler, formatted without datetime on the hot path.

Every step stamps two records (its journal events and its traveler entry). On a VM, code that runs
right after an idle wait is several times slower than back to back, so the per-step path keeps its
distinct work small: one `time.time_ns()` and a date-time prefix formatted once per second.
"""

from __future__ import annotations

import time

_cached: tuple[int, str] = (-1, "")  # (epoch second, its prefix): one object, so threads never mix two


def _split(ns: int) -> tuple[str, int]:
    """("YYYY-MM-DDTHH:MM:SS", microseconds) of a UTC time in ns since the epoch."""
    global _cached
    second, us = divmod(ns // 1000, 1_000_000)
    cached = _cached
    if cached[0] != second:
        cached = _cached = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return cached[1], us


def utc_now_ms() -> str:
    """UTC ISO-8601 with milliseconds and a Z, e.g. 2026-11-22T06:15:30.123Z (journal `ts`)."""
    prefix, us = _split(time.time_ns())
    return f"{prefix}.{us // 1000:03d}Z"


def utc_now_us() -> str:
    """UTC ISO-8601 with microseconds and +00:00, e.g. 2026-11-22T06:15:30.123456+00:00: what
    `datetime.now(UTC).isoformat(timespec="microseconds")` gives (traveler `at`)."""
    prefix, us = _split(time.time_ns())
    return f"{prefix}.{us:06d}+00:00"
