"""Keep the garbage collector's full collections short while a lot runs.

A controller process holds a large, long-lived heap before its first step: pydantic schemas, the
line's drivers and their profiles, and on an emulated line the emulators and the broker (~130 000
tracked objects). CPython's full collection walks all of it: measured here, one took ~150 ms in the
middle of a run and the run's allocations triggered one every few runs - a stop-the-world pause
between a job's end and the next start. While a lot runs, everything alive when it started is moved to
the permanent generation (`gc.freeze`), so collections walk only what the run itself allocated; when
the last running lot ends it goes back (`gc.unfreeze`) and is collected as before.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

_running = 0  # lots inside `frozen_heap` in this process


@contextmanager
def frozen_heap() -> Iterator[None]:
    global _running
    _running += 1
    gc.freeze()  # cyclic garbage already there is kept until unfreeze, then collected as usual
    try:
        yield
    finally:
        _running -= 1
        if _running == 0:
            gc.unfreeze()
