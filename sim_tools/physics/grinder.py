"""Grinder physics: remove at the feed (grind) or a Preston rate (CMP/polish) until the in-line gauge
reads the target, within the gauge's error.

Every figure is a default that `params` overrides (keys in brackets).
"""

from __future__ import annotations

import random

from drivers.kinds.grinder import GrinderRecipe
from drivers.profiles.base import Value
from drivers.tool import Recipe
from sim_tools.physics.base import Phase, Physics, Plan, ramp

# Preston coefficient, um/min per (kPa x rpm) [preston_<mode>]: at 20 kPa (~3 psi) and 100 rpm CMP
# removes 0.5 um/min (process-flows.md: CMP 0.1-1 um/min), a final polish 0.2 um/min ("slow").
PRESTON_UM_MIN_KPA_RPM = {"cmp": 2.5e-4, "polish": 1.0e-4}
# Surface roughness Ra, nm [ra_<mode>_nm] (public typical): fine back-grind ~20 nm at 1 um/s feed,
# rougher as sqrt(feed); dry/pad polish ~2 nm; CMP ~0.5 nm.
RA_NM = {"back_grind": 20.0, "cmp": 0.5, "polish": 2.0}
GAUGE_SIGMA_UM = 0.3  # in-line contact gauge 1-sigma repeatability [gauge_sigma_um], clipped at 3 sigma
COOLANT_LPM = 3.0  # grinding-wheel DI water [coolant_lpm]
SLURRY_ML_MIN = 200.0  # CMP/polish slurry [slurry_ml_min]


class GrinderPhysics(Physics):
    kind = "grinder"
    PARAMS = (
        "chuck_s", "coolant_lpm", "gauge_sigma_um", "rinse_s", "slurry_ml_min", "spark_out_s",
        "spin_up_s", "preston_{mode}", "ra_{mode}_nm"
    )
    recipe_model = GrinderRecipe

    def idle_values(self) -> dict[str, Value]:
        return {"gauge_thickness_um": 0.0, "spindle_speed_rpm": 0.0, "slurry_flow_ml_min": 0.0,
                "coolant_flow_lpm": 0.0}

    def initial_results(self) -> dict[str, Value]:
        return {"final_thickness_um": 0.0, "removed_um": 0.0, "process_time_s": 0.0,
                "removal_rate_um_min": 0.0, "surface_roughness_nm": 0.0}

    def p(self, name: str, default: float) -> float:
        return self.params.get(name, default)

    def rate_um_s(self, r: GrinderRecipe) -> float:
        """Grind: the wheel down-feed. CMP/polish: Preston, rate = k * pressure * speed."""
        if r.mode == "back_grind":
            return r.feed_um_s
        k = self.p(f"preston_{r.mode}", PRESTON_UM_MIN_KPA_RPM[r.mode])
        return k * r.down_pressure_kpa * r.spindle_rpm / 60.0

    def gauge_error_um(self, rng: random.Random) -> float:
        if not self.spread:
            return 0.0
        sigma = self.p("gauge_sigma_um", GAUGE_SIGMA_UM)
        return max(-3 * sigma, min(3 * sigma, rng.gauss(0.0, sigma)))

    def plan(self, recipe: Recipe, rng: random.Random) -> Plan:
        assert isinstance(recipe, GrinderRecipe)
        r = recipe
        grind = r.mode == "back_grind"
        rate = self.rate_um_s(r) if grind else self.noisy(rng, self.rate_um_s(r))  # the feed is exact
        final = min(r.start_thickness_um, r.target_thickness_um + self.gauge_error_um(rng))
        removed = r.start_thickness_um - final
        remove_s = removed / rate
        ra = self.p(f"ra_{r.mode}_nm", RA_NM[r.mode]) * (r.feed_um_s ** 0.5 if grind else 1.0)
        coolant = self.p("coolant_lpm", COOLANT_LPM) if grind else 0.0
        slurry = 0.0 if grind else self.p("slurry_ml_min", SLURRY_ML_MIN)
        setup_s = self.p("chuck_s", 10.0) + self.p("spin_up_s", 20.0)
        finish_s = self.p("spark_out_s", 15.0) if grind else self.p("rinse_s", 30.0)

        def live(gauge: float, rpm: float, flowing: bool = True) -> dict[str, Value]:
            return {"gauge_thickness_um": gauge, "spindle_speed_rpm": rpm,
                    "slurry_flow_ml_min": slurry if flowing else 0.0,
                    "coolant_flow_lpm": coolant if flowing else 0.0}

        phases = [
            Phase("chuck", "SETUP", self.p("chuck_s", 10.0),
                  lambda f: live(r.start_thickness_um, 0.0, flowing=False)),
            Phase("spin-up", "SETUP", self.p("spin_up_s", 20.0),
                  lambda f: live(r.start_thickness_um, ramp(0.0, r.spindle_rpm, f))),
            Phase("remove", "EXECUTING", remove_s,
                  lambda f: live(ramp(r.start_thickness_um, final, f), r.spindle_rpm)),
            Phase("spark-out" if grind else "rinse", "EXECUTING", finish_s,
                  lambda f: live(final, ramp(r.spindle_rpm, 0.0, f))),
        ]
        results: dict[str, Value] = {
            "final_thickness_um": round(final, 3),
            "removed_um": round(removed, 3),
            "process_time_s": round(remove_s, 3),
            "removal_rate_um_min": round(rate * 60, 4),
            "surface_roughness_nm": round(self.noisy(rng, ra), 3),
        }

        def partial(elapsed: float) -> dict[str, Value]:
            """Removed so far at the rate; roughness is not measured on an aborted wafer."""
            t = max(0.0, min(remove_s, elapsed - setup_s))
            done = rate * t
            return {"final_thickness_um": round(r.start_thickness_um - done, 3), "removed_um": round(done, 3),
                    "process_time_s": round(t, 3), "removal_rate_um_min": round(rate * 60, 4),
                    "surface_roughness_nm": 0.0}

        return Plan(phases, results, partial=partial)
