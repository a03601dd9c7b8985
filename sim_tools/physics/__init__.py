"""Physics per tool kind: a recipe becomes a plan of timed phases and the results the tool reports."""

from __future__ import annotations

from sim_tools.physics.base import Phase, Physics, Plan
from sim_tools.physics.bonder import BonderPhysics
from sim_tools.physics.dicing_saw import DicingSawPhysics
from sim_tools.physics.sputterer import SputtererPhysics

PHYSICS: dict[str, type[Physics]] = {
    p.kind: p for p in (BonderPhysics, SputtererPhysics, DicingSawPhysics)
}

__all__ = ["PHYSICS", "Phase", "Physics", "Plan"]
