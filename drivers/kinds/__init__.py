"""Tool kinds: each file declares a recipe, a result and the kind's status variables."""

from __future__ import annotations

from typing import Any

from drivers.kinds.ball_mounter import BallMounter
from drivers.kinds.bonder import Bonder
from drivers.kinds.coater import Coater
from drivers.kinds.cvd import Cvd
from drivers.kinds.dicing_saw import DicingSaw
from drivers.kinds.etcher import Etcher
from drivers.kinds.grinder import Grinder
from drivers.kinds.plater import Plater
from drivers.kinds.sputterer import Sputterer
from drivers.tool import Tool

KINDS: dict[str, type[Tool[Any, Any]]] = {
    cls.kind: cls
    for cls in (Bonder, Sputterer, Plater, Etcher, DicingSaw, Coater, Grinder, Cvd, BallMounter)
}

__all__ = [
    "KINDS", "BallMounter", "Bonder", "Coater", "Cvd", "DicingSaw",
    "Etcher", "Grinder", "Plater", "Sputterer",
]
