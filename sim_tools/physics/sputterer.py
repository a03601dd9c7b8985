"""Sputterer physics: log-linear pump-down to base pressure, then a material- and power-dependent rate."""

from __future__ import annotations

import math
import random

from drivers.kinds.sputterer import SputtererRecipe
from drivers.profiles.base import Value
from drivers.tool import Recipe
from sim_tools.physics.base import Phase, Physics, Plan

ATM_TORR = 760.0
WORKING_TORR = 3e-3  # argon pressure while the plasma is lit
# Deposition rate in nm per tool second per kW of target power (0.1-1 um/min at 1-6 kW).
RATE_NM_S_PER_KW = {"Al": 3.0, "Cu": 4.0, "Ti": 1.5, "Cr": 2.0}


class SputtererPhysics(Physics):
    kind = "sputterer"
    PARAMS = (
        "pumpdown_s_per_decade", "vent_s", "rate_{material}"
    )
    recipe_model = SputtererRecipe

    def idle_values(self) -> dict[str, Value]:
        return {"chamber_pressure_torr": ATM_TORR, "deposited_nm": 0.0}

    def initial_results(self) -> dict[str, Value]:
        return {
            "film_thickness_nm": 0.0,
            "deposition_time_s": 0.0,
            "pumpdown_time_s": 0.0,
            "base_pressure_reached_torr": 0.0,
        }

    def rate_nm_s(self, material: str, power_w: float) -> float:
        base = self.params.get(f"rate_{material}", RATE_NM_S_PER_KW[material])
        return base * power_w / 1000.0

    def plan(self, recipe: Recipe, rng: random.Random) -> Plan:
        assert isinstance(recipe, SputtererRecipe)
        s_per_decade = self.params.get("pumpdown_s_per_decade", 60.0)
        reached = recipe.base_pressure_torr * rng.uniform(0.5, 0.9)
        pump_s = math.log10(ATM_TORR / reached) * s_per_decade
        rate = self.rate_nm_s(recipe.material, recipe.power_w)
        dep_s = recipe.thickness_nm / rate
        film = self.noisy(rng, recipe.thickness_nm)
        vent_s = self.params.get("vent_s", 60.0)

        def pumping(f: float) -> dict[str, Value]:
            return {"chamber_pressure_torr": ATM_TORR * (reached / ATM_TORR) ** f}

        def depositing(f: float) -> dict[str, Value]:
            return {"chamber_pressure_torr": WORKING_TORR, "deposited_nm": film * f}

        def venting(f: float) -> dict[str, Value]:
            return {"chamber_pressure_torr": WORKING_TORR + (ATM_TORR - WORKING_TORR) * f,
                    "deposited_nm": film}

        phases = [
            Phase("pump-down", "SETUP", pump_s, pumping),
            Phase("deposit", "EXECUTING", dep_s, depositing),
            Phase("vent", "EXECUTING", vent_s, venting),
        ]
        results: dict[str, Value] = {
            "film_thickness_nm": round(film, 2),
            "deposition_time_s": round(dep_s, 2),
            "pumpdown_time_s": round(pump_s, 2),
            "base_pressure_reached_torr": reached,
        }
        return Plan(phases, results, meta={"rate_nm_s": rate})
