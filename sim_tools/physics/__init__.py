"""Physics per tool kind: a recipe becomes a plan of timed phases and the results the tool reports."""

from __future__ import annotations

from sim_tools.physics.ball_mounter import BallMounterPhysics
from sim_tools.physics.base import Phase, Physics, Plan
from sim_tools.physics.bonder import BonderPhysics
from sim_tools.physics.coater import CoaterPhysics
from sim_tools.physics.cvd import CvdPhysics
from sim_tools.physics.dicing_saw import DicingSawPhysics
from sim_tools.physics.etcher import EtcherPhysics
from sim_tools.physics.grinder import GrinderPhysics
from sim_tools.physics.plater import PlaterPhysics
from sim_tools.physics.sputterer import SputtererPhysics

PHYSICS: dict[str, type[Physics]] = {
    p.kind: p
    for p in (BonderPhysics, SputtererPhysics, PlaterPhysics, EtcherPhysics, DicingSawPhysics,
              CoaterPhysics, GrinderPhysics, CvdPhysics, BallMounterPhysics)
}

__all__ = ["PHYSICS", "Phase", "Physics", "Plan"]
