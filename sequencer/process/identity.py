"""Values kept beside live objects, by identity: a recipe's range verdict, a traveler's step index.

Keyed by id() with a weak reference to the very object, so a new object that reuses a dead one's id
never inherits its value, and an entry goes when its object dies. Cheaper on the step path than a
WeakSet or WeakKeyDictionary (which build a weak reference on every lookup) and it also serves
objects that are not hashable (pydantic models that are not frozen).
"""

from __future__ import annotations

import weakref
from typing import Any, Generic, TypeVar

V = TypeVar("V")


class ByIdentity(Generic[V]):
    def __init__(self) -> None:
        self._held: dict[int, tuple[weakref.ref[Any], V]] = {}

    def get(self, obj: object) -> V | None:
        held = self._held.get(id(obj))
        return held[1] if held is not None and held[0]() is obj else None

    def put(self, obj: object, value: V) -> V:
        key = id(obj)
        self._held[key] = (weakref.ref(obj, lambda ref: self._forget(key, ref)), value)
        return value

    def _forget(self, key: int, ref: weakref.ref[Any]) -> None:
        held = self._held.get(key)
        if held is not None and held[0] is ref:  # not a newer object's entry under the same id
            del self._held[key]
