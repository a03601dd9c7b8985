"""Plater physics: Faraday's law, thickness = J t M / (n F rho) x cathode efficiency.

Phases: pre-wet (SETUP, wets the seed and clears bubbles), plate (rectifier on), spin-rinse-dry.
Cu at 20 mA/cm2 gives 0.44 um/min (process-flows.md). Via fill models conformal growth on the wall
of a via of radius `via_fill_um`: the open cross-section closes as (1 - t/r)^2 and is full at t >= r.
"""

from __future__ import annotations

import random

from drivers.kinds.plater import METALS as METAL_CONSTANTS
from drivers.kinds.plater import RECTIFIER_MAX_A, PlaterRecipe
from drivers.kinds.plater import faraday_um_per_s as faraday_um_per_s
from drivers.profiles.base import Value
from drivers.tool import Recipe
from sim_tools.physics.base import Phase, Physics, Plan, ramp

IDLE_BATH_C = 25.0
# metal: (molar mass g/mol, electrons per ion, density g/cm3, cathode current efficiency); the
# constants of Faraday's law are the kind's (drivers/kinds/plater.py), the efficiency is this bath's
EFFICIENCY = {
    "Cu": 1.00,  # acid sulfate bath: ~100 % (0.44 um/min at 20 mA/cm2)
    "Ni": 0.95,  # Watts nickel: 93-97 %
    "Au": 0.95,  # Au(I) sulfite / cyanide soft gold: 90-100 %
    "Al": 0.85,  # AlCl3-[EMIm]Cl ionic liquid: 80-95 % reported
}
METALS: dict[str, tuple[float, int, float, float]] = {
    m: (*METAL_CONSTANTS[m], EFFICIENCY[m]) for m in METAL_CONSTANTS
}


def via_fill_pct(thickness_um: float, radius_um: float) -> float:
    closed = min(1.0, max(0.0, thickness_um / radius_um))
    return 100.0 * (1.0 - (1.0 - closed) ** 2)


class PlaterPhysics(Physics):
    kind = "plater"
    PARAMS = (
        "prewet_s", "rectifier_max_a", "rinse_dry_s", "via_fill_um", "efficiency_{metal}"
    )
    recipe_model = PlaterRecipe

    def idle_values(self) -> dict[str, Value]:
        return {"rectifier_current_a": 0.0, "bath_temperature_c": IDLE_BATH_C, "deposited_um": 0.0}

    def initial_results(self) -> dict[str, Value]:
        return {"plated_thickness_um": 0.0, "charge_c": 0.0, "via_fill_pct": 0.0, "bath_temp_avg_c": 0.0}

    def efficiency(self, metal: str) -> float:
        return self.params.get(f"efficiency_{metal}", METALS[metal][3])

    def plan(self, recipe: Recipe, rng: random.Random) -> Plan:
        assert isinstance(recipe, PlaterRecipe)
        current = recipe.current_a()
        limit = self.params.get("rectifier_max_a", RECTIFIER_MAX_A)
        if current > limit:
            from sim_tools.model import Refused  # late: sim_tools.model imports this package

            raise Refused(6, f"recipe plated_area_cm2: total current {current:.1f} A exceeds the "
                             f"{limit:g} A rectifier")
        prewet_s = self.params.get("prewet_s", 60.0)
        rinse_s = self.params.get("rinse_dry_s", 120.0)
        radius = self.params.get("via_fill_um", 10.0)
        rate = faraday_um_per_s(recipe.metal, recipe.current_density_ma_cm2, self.efficiency(recipe.metal))
        film = self.noisy(rng, rate * recipe.plating_time_s)
        bath = self.noisy(rng, recipe.bath_temp_c)

        def fill(thickness: float) -> float:
            return round(via_fill_pct(thickness, radius), 2) if recipe.fill_vias else 0.0

        def prewet(f: float) -> dict[str, Value]:
            return {"bath_temperature_c": ramp(IDLE_BATH_C, bath, f)}

        def plating(f: float) -> dict[str, Value]:
            return {"rectifier_current_a": current, "bath_temperature_c": bath, "deposited_um": film * f}

        def rinsing(_f: float) -> dict[str, Value]:
            return {"bath_temperature_c": bath, "deposited_um": film}

        def partial(elapsed: float) -> dict[str, Value]:
            on_s = min(recipe.plating_time_s, max(0.0, elapsed - prewet_s))
            done = film * on_s / recipe.plating_time_s
            return {"plated_thickness_um": round(done, 4), "charge_c": round(current * on_s, 2),
                    "via_fill_pct": fill(done), "bath_temp_avg_c": round(bath, 2)}

        phases = [
            Phase("pre-wet", "SETUP", prewet_s, prewet),
            Phase("plate", "EXECUTING", recipe.plating_time_s, plating),
            Phase("rinse-dry", "EXECUTING", rinse_s, rinsing),
        ]
        results: dict[str, Value] = {
            "plated_thickness_um": round(film, 4),
            "charge_c": round(current * recipe.plating_time_s, 2),
            "via_fill_pct": fill(film),
            "bath_temp_avg_c": round(bath, 2),
        }
        return Plan(phases, results, partial=partial, meta={"rate_um_s": rate, "current_a": current})
