"""Bonder physics: pump the chamber down, ramp the chuck, hold at temperature and force, cool.

The mode sets the chamber: a wafer bond pumps the full chamber (`pumpdown_s`, 120 s), a lamination
only the small diaphragm chamber of a vacuum laminator (`lamination_pumpdown_s`, 30 s), and a
die attach runs at atmosphere under nitrogen with no pump-down (its min pressure is atmospheric).
"""

from __future__ import annotations

import random

from drivers.kinds.bonder import BonderRecipe
from drivers.profiles.base import Value
from drivers.tool import Recipe
from sim_tools.physics.base import Phase, Physics, Plan, ramp

ROOM_C = 25.0
ATM_MBAR = 1013.0
UNLOAD_C = 80.0  # chuck temperature at which the cool-down ends and the wafer can be unloaded


class BonderPhysics(Physics):
    kind = "bonder"
    PARAMS = (
        "cooldown_s", "lamination_pumpdown_s", "pumpdown_s"
    )
    recipe_model = BonderRecipe

    def idle_values(self) -> dict[str, Value]:
        return {"chuck_temp_c": ROOM_C, "applied_force_kn": 0.0, "chamber_pressure_mbar": ATM_MBAR}

    def initial_results(self) -> dict[str, Value]:
        return {"peak_temp_c": 0.0, "peak_force_kn": 0.0, "hold_time_s": 0.0, "min_pressure_mbar": 0.0}

    def pumpdown_s(self, mode: str) -> float:
        if mode == "die_attach":
            return 0.0
        if mode == "lamination":
            return self.params.get("lamination_pumpdown_s", 30.0)
        return self.params.get("pumpdown_s", 120.0)

    def plan(self, recipe: Recipe, rng: random.Random) -> Plan:
        assert isinstance(recipe, BonderRecipe)
        pump_s = self.pumpdown_s(recipe.mode)
        ramp_s = (recipe.temp_c - ROOM_C) / recipe.ramp_c_per_min * 60.0
        cool_s = self.params.get("cooldown_s", 300.0)
        p_end = recipe.vacuum_mbar * rng.uniform(0.5, 0.9) if pump_s > 0 else ATM_MBAR
        peak_t = self.noisy(rng, recipe.temp_c)
        peak_f = self.noisy(rng, recipe.force_kn)
        unload_c = min(UNLOAD_C, peak_t)

        def pumping(f: float) -> dict[str, Value]:
            return {"chamber_pressure_mbar": ATM_MBAR * (p_end / ATM_MBAR) ** f}

        def heating(f: float) -> dict[str, Value]:
            return {"chuck_temp_c": ramp(ROOM_C, peak_t, f), "chamber_pressure_mbar": p_end}

        def holding(_f: float) -> dict[str, Value]:
            return {"chuck_temp_c": peak_t, "applied_force_kn": peak_f, "chamber_pressure_mbar": p_end}

        def cooling(f: float) -> dict[str, Value]:
            return {"chuck_temp_c": ramp(peak_t, unload_c, f),
                    "chamber_pressure_mbar": ramp(p_end, ATM_MBAR, f)}

        phases = [Phase("pump-down", "SETUP", pump_s, pumping)] if pump_s > 0 else []
        phases += [
            Phase("ramp", "SETUP", ramp_s, heating),
            Phase("bond", "EXECUTING", recipe.hold_s, holding),
            Phase("cool", "EXECUTING", cool_s, cooling),
        ]
        results: dict[str, Value] = {
            "peak_temp_c": round(peak_t, 2),
            "peak_force_kn": round(peak_f, 3),
            "hold_time_s": recipe.hold_s,
            "min_pressure_mbar": p_end,
        }
        return Plan(phases, results, meta={"mode": recipe.mode})
