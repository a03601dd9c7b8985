"""Tool kinds: each file declares a recipe, a result and the kind's status variables."""

from __future__ import annotations

from typing import Any

from drivers.kinds.bonder import Bonder
from drivers.kinds.dicing_saw import DicingSaw
from drivers.kinds.sputterer import Sputterer
from drivers.tool import Tool

KINDS: dict[str, type[Tool[Any, Any]]] = {
    cls.kind: cls for cls in (Bonder, Sputterer, DicingSaw)
}

__all__ = ["KINDS", "Bonder", "DicingSaw", "Sputterer"]
