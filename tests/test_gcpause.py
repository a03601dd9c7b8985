"""The heap a lot starts with is frozen while it runs, and given back when the last lot ends."""

from __future__ import annotations

import gc

from sequencer.run.gcpause import frozen_heap


def test_heap_frozen_while_lots_run_and_released_after_the_last() -> None:
    assert gc.get_freeze_count() == 0
    keep = [object() for _ in range(10)]  # noqa: F841 - alive when the first lot starts
    with frozen_heap():
        first = gc.get_freeze_count()
        assert first > 0
        with frozen_heap():  # a second lot in the same process
            assert gc.get_freeze_count() >= first
        assert gc.get_freeze_count() >= first  # the first lot still runs
    assert gc.get_freeze_count() == 0


def test_heap_released_when_a_lot_fails() -> None:
    try:
        with frozen_heap():
            raise RuntimeError("a tool alarm escaped")
    except RuntimeError:
        pass
    assert gc.get_freeze_count() == 0
