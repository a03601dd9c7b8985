"""CVD physics: pump down, heat the susceptor, stabilise gas flows, deposit, then purge and cool.

Figures (all overridable through `params`):
- rate at 300 C and 300 W: PSG 100 nm/min, SiN 50 nm/min (process-flows.md "cvd" row: ~50-100 nm/min);
  PECVD rate is plasma-limited, so it grows sub-linearly with power (x sqrt(P / 300 W)) and falls
  mildly with temperature (-0.1 % per C, denser film), a simple stand-in for a real rate chart;
- refractive index (633 nm), typical public values: PSG ~1.45 (thermal SiO2 is 1.46); PECVD SiNx:H
  1.90 at 200 C rising to 2.00 at 400 C as its hydrogen content falls;
- within-wafer non-uniformity (1 sigma): PSG 2 %, SiN 1.5 % (typical single-wafer PECVD, 1-3 %).
"""

from __future__ import annotations

import math
import random

from drivers.kinds.cvd import CvdRecipe
from drivers.profiles.base import Value
from drivers.tool import Recipe
from sim_tools.physics.base import Phase, Physics, Plan, ramp

ROOM_C = 25.0
ATM_TORR = 760.0
BASE_TORR = 0.01  # pumped before the gases are let in
PROCESS_TORR = 1.5  # PECVD working pressure with the gases flowing
UNLOAD_C = 150.0  # the purge cools the susceptor to this before the wafer leaves
REF_T_C, REF_POWER_W = 300.0, 300.0
RATE_NM_MIN = {"PSG": 100.0, "SiN": 50.0}
RATE_PER_C = -0.001
UNIFORMITY_PCT = {"PSG": 2.0, "SiN": 1.5}


class CvdPhysics(Physics):
    kind = "cvd"
    PARAMS = (
        "heat_c_per_min", "index_PSG", "index_SiN_200c", "pumpdown_s", "purge_s", "rate_per_c",
        "stabilise_s", "rate_{film}"
    )
    recipe_model = CvdRecipe

    def idle_values(self) -> dict[str, Value]:
        return {"chamber_pressure_torr": ATM_TORR, "susceptor_temp_c": ROOM_C, "deposited_nm": 0.0}

    def initial_results(self) -> dict[str, Value]:
        return {"film_thickness_nm": 0.0, "deposition_time_s": 0.0, "uniformity_pct": 0.0,
                "refractive_index": 0.0}

    def rate_nm_min(self, film: str, temp_c: float, power_w: float) -> float:
        base = self.params.get(f"rate_{film}", RATE_NM_MIN[film])
        per_c = self.params.get("rate_per_c", RATE_PER_C)
        return base * math.sqrt(power_w / REF_POWER_W) * (1.0 + per_c * (temp_c - REF_T_C))

    def refractive_index(self, film: str, temp_c: float) -> float:
        if film == "PSG":
            return self.params.get("index_PSG", 1.45)
        return self.params.get("index_SiN_200c", 1.90) + 0.0005 * (temp_c - 200.0)

    def plan(self, recipe: Recipe, rng: random.Random) -> Plan:
        assert isinstance(recipe, CvdRecipe)
        temp = recipe.deposition_temp_c
        pump_s = self.params.get("pumpdown_s", 60.0)
        heat_s = (temp - ROOM_C) / self.params.get("heat_c_per_min", 30.0) * 60.0
        stab_s = self.params.get("stabilise_s", 30.0)
        purge_s = self.params.get("purge_s", 180.0)
        rate_nm_s = self.rate_nm_min(recipe.film, temp, recipe.rf_power_w) / 60.0
        dep_s = recipe.thickness_nm / rate_nm_s
        film = self.noisy(rng, recipe.thickness_nm)
        index = self.refractive_index(recipe.film, temp) * (1.0 + rng.gauss(0.0, self.spread * 0.2))
        uniformity = self.noisy(rng, UNIFORMITY_PCT[recipe.film])
        unload_c = min(UNLOAD_C, temp)
        dep_t0 = pump_s + heat_s + stab_s

        def pumping(f: float) -> dict[str, Value]:
            return {"chamber_pressure_torr": ATM_TORR * (BASE_TORR / ATM_TORR) ** f}

        def heating(f: float) -> dict[str, Value]:
            return {"chamber_pressure_torr": BASE_TORR, "susceptor_temp_c": ramp(ROOM_C, temp, f)}

        def stabilising(f: float) -> dict[str, Value]:
            return {"chamber_pressure_torr": ramp(BASE_TORR, PROCESS_TORR, f), "susceptor_temp_c": temp}

        def depositing(f: float) -> dict[str, Value]:
            return {"chamber_pressure_torr": PROCESS_TORR, "susceptor_temp_c": temp, "deposited_nm": film * f}

        def purging(f: float) -> dict[str, Value]:
            return {"chamber_pressure_torr": ramp(PROCESS_TORR, ATM_TORR, f),
                    "susceptor_temp_c": ramp(temp, unload_c, f), "deposited_nm": film}

        def partial(elapsed: float) -> dict[str, Value]:
            done_s = min(dep_s, max(0.0, elapsed - dep_t0))
            grown = done_s > 0
            return {
                "film_thickness_nm": round(film * done_s / dep_s, 2),
                "deposition_time_s": round(done_s, 2),
                "uniformity_pct": round(uniformity, 2) if grown else 0.0,
                "refractive_index": round(index, 4) if grown else 0.0,
            }

        phases = [
            Phase("pump-down", "SETUP", pump_s, pumping),
            Phase("heat-up", "SETUP", heat_s, heating),
            Phase("stabilise", "SETUP", stab_s, stabilising),
            Phase("deposit", "EXECUTING", dep_s, depositing),
            Phase("purge-cool", "EXECUTING", purge_s, purging),
        ]
        results: dict[str, Value] = {
            "film_thickness_nm": round(film, 2),
            "deposition_time_s": round(dep_s, 2),
            "uniformity_pct": round(uniformity, 2),
            "refractive_index": round(index, 4),
        }
        return Plan(phases, results, partial=partial, meta={"rate_nm_min": rate_nm_s * 60.0})
