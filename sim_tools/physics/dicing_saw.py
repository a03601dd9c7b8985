"""Dicing saw physics: spindle spin-up, then cuts at the feed speed with a table index between them."""

from __future__ import annotations

import math
import random

from drivers.kinds.dicing_saw import INDEX_S, DicingSawRecipe
from drivers.profiles.base import Value
from drivers.tool import Recipe
from sim_tools.physics.base import Phase, Physics, Plan, ramp

COOLING_LPM = 1.5
WEAR_UM_PER_M = 2.0  # blade wear per metre of cut at 30k rpm


class DicingSawPhysics(Physics):
    kind = "dicing_saw"
    PARAMS = (
        "index_s", "spin_up_s"
    )
    recipe_model = DicingSawRecipe

    def __init__(self, spread: float = 0.01, params: dict[str, float] | None = None) -> None:
        super().__init__(spread, params)
        self.blade_wear_um = 0.0  # accumulates over the blade's life

    def idle_values(self) -> dict[str, Value]:
        return {"spindle_speed_rpm": 0.0, "cuts_done": 0, "cooling_flow_lpm": 0.0}

    def initial_results(self) -> dict[str, Value]:
        return {"cuts_completed": 0, "cut_time_s": 0.0, "blade_wear_um": 0.0}

    def plan(self, recipe: Recipe, rng: random.Random) -> Plan:
        assert isinstance(recipe, DicingSawRecipe)
        spin_s = self.params.get("spin_up_s", 30.0)
        index_s = self.params.get("index_s", INDEX_S)
        per_cut = recipe.cut_length_mm / recipe.feed_mm_s + index_s
        cut_s = recipe.cut_count * per_cut
        metres = recipe.cut_count * recipe.cut_length_mm / 1000.0
        wear = self.noisy(rng, metres * WEAR_UM_PER_M * recipe.spindle_rpm / 30000.0)
        self.blade_wear_um += wear

        def spinning(f: float) -> dict[str, Value]:
            return {"spindle_speed_rpm": ramp(0, recipe.spindle_rpm, f), "cooling_flow_lpm": COOLING_LPM}

        def cutting(f: float) -> dict[str, Value]:
            return {
                "spindle_speed_rpm": recipe.spindle_rpm,
                "cooling_flow_lpm": COOLING_LPM,
                "cuts_done": min(recipe.cut_count, math.floor(f * recipe.cut_count)),
            }

        def partial(elapsed: float) -> dict[str, Value]:
            done = max(0, min(recipe.cut_count, math.floor((elapsed - spin_s) / per_cut)))
            return {"cuts_completed": done, "cut_time_s": max(0.0, elapsed - spin_s),
                    "blade_wear_um": round(self.blade_wear_um, 3)}

        phases = [
            Phase("spin-up", "SETUP", spin_s, spinning),
            Phase("cut", "EXECUTING", cut_s, cutting),
        ]
        results: dict[str, Value] = {
            "cuts_completed": recipe.cut_count,
            "cut_time_s": round(cut_s, 3),
            "blade_wear_um": round(self.blade_wear_um, 3),
        }
        return Plan(phases, results, partial=partial)
