"""Values kept beside live objects go with their object, and never pass to a successor at its id."""

from __future__ import annotations

import gc

from sequencer.process.identity import ByIdentity


class Thing:
    pass


def test_value_lives_and_dies_with_its_object() -> None:
    held: ByIdentity[str] = ByIdentity()
    first = Thing()
    assert held.put(first, "judged") == "judged"
    assert held.get(first) == "judged"
    assert held.get(Thing()) is None
    key = id(first)
    del first
    gc.collect()
    successor = Thing()  # may or may not reuse the id: either way it inherits nothing
    assert held.get(successor) is None
    assert key not in held._held  # the dead object's entry is gone
