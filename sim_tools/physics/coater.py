"""Coater physics: spin thickness ~ 1/sqrt(rpm), printed/potted layers at target, cure shrinkage, a
dose- and develop-time threshold for opening patterns, and a resist strip at a constant rate.

Every figure is a default that `params` overrides (keys in brackets).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

from drivers.kinds.coater import CoaterRecipe, layer_volume_ml
from drivers.profiles.base import Value
from drivers.tool import Recipe
from sim_tools.physics.base import Phase, Physics, Plan, ramp

ROOM_C = 25.0
COOL_END_C = 60.0  # the cure oven cools at the recipe ramp down to this, then unloads
WET_FACTOR = 1.3  # wet film / soft-baked film (display only: solvent leaves in the soft bake)
RAMP_SHARE = 0.8  # share of cure shrinkage reached by the end of the ramp (imidization at 150-250 C)
# Soft-baked spin thickness at 2000 rpm, um [spin_um_at_2000_<material>]; t = t2000 * sqrt(2000 / rpm).
# Polyimide precursor ~10 um (process-flows brief); a viscous bonding epoxy 25 um (so 500-6000 rpm spans
# ~14-50 um, inside the 10-75 um bonding layer of A5); a thick positive resist 8 um (AZ 4620 class).
SPIN_UM_AT_2000 = {"polyimide": 10.0, "epoxy": 25.0, "resist": 8.0}
# Relative thickness loss in a cure [shrink_<material>]: polyamic-acid imidization loses 30-40 %
# (solvent and water), epoxy a few %, a resist bake some residual solvent.
CURE_SHRINK = {"polyimide": 0.35, "epoxy": 0.03, "resist": 0.05}
# Dose to clear per um of layer, mJ/cm2/um [clear_dose_<material>]; develop rate, um/min
# [develop_um_min_<material>] (public typical values for thick i-line resist and photo-polyimide).
CLEAR_DOSE_MJ_CM2_PER_UM = {"polyimide": 30.0, "resist": 15.0}
DEVELOP_UM_MIN = {"polyimide": 5.0, "resist": 10.0}

Outcome = tuple[list[Phase], float, float, bool]  # phases, final film um, resin ml, patterns open
Step = Callable[[CoaterRecipe, random.Random], Outcome]


def pv(rpm: float = 0.0, hot: float = ROOM_C, ml: float = 0.0, film: float = 0.0) -> dict[str, Value]:
    return {"spindle_speed_rpm": rpm, "hotplate_temp_c": hot, "dispensed_ml": ml, "film_now_um": film}


class CoaterPhysics(Physics):
    kind = "coater"
    PARAMS = (
        "dark_loss", "dispense_s", "expose_align_s", "laminate_align_s", "laminate_c", "laminate_mm_s",
        "lamp_mw_cm2", "level_s", "pot_ml_s", "prebake_c", "prebake_s", "prime_s", "print_align_s",
        "print_s", "purge_s", "rinse_s", "spin_dispense_ml", "strip_c", "strip_um_min",
        "clear_dose_{material}", "develop_um_min_{material}", "shrink_{material}",
        "spin_um_at_2000_{material}"
    )
    recipe_model = CoaterRecipe

    def idle_values(self) -> dict[str, Value]:
        return pv()

    def initial_results(self) -> dict[str, Value]:
        return {"film_thickness_um": 0.0, "cure_temp_peak_c": 0.0, "operation_time_s": 0.0,
                "shrinkage_pct": 0.0, "patterns_open": False, "resin_used_ml": 0.0}

    def p(self, name: str, default: float) -> float:
        return self.params.get(name, default)

    def spin_thickness_um(self, material: str, rpm: float) -> float:
        t2000 = self.p(f"spin_um_at_2000_{material}", SPIN_UM_AT_2000[material])
        return t2000 * math.sqrt(2000.0 / rpm)

    def plan(self, recipe: Recipe, rng: random.Random) -> Plan:
        assert isinstance(recipe, CoaterRecipe)
        r = recipe
        steps: dict[str, Step] = {
            "spin_coat": self._spin_coat, "print": self._print, "pot": self._pot,
            "film_laminate": self._film_laminate, "cure": self._cure,
            "expose_develop": self._expose_develop, "strip": self._strip,
        }
        phases, film, used_ml, opened = steps[r.operation](r, rng)
        duration = sum(ph.duration_s for ph in phases)
        results = summary(r, film, peak_temp(phases, math.inf), duration, used_ml, opened)

        def partial(elapsed: float) -> dict[str, Value]:
            """What was really done: the live values at the abort; patterns count only when finished."""
            now = values_at(phases, elapsed)
            return summary(r, float(now["film_now_um"]), peak_temp(phases, elapsed), elapsed,
                           float(now["dispensed_ml"]), False)

        return Plan(phases, results, partial=partial)

    # --- one method per operation -------------------------------------------------------------------
    def _spin_coat(self, r: CoaterRecipe, rng: random.Random) -> Outcome:
        t = self.noisy(rng, self.spin_thickness_um(r.material, r.spin_rpm))
        ml = self.p("spin_dispense_ml", 5.0) * (r.wafer_diameter_mm / 300.0) ** 2
        bake_c = self.p("prebake_c", 100.0)
        return [
            Phase("dispense", "SETUP", self.p("dispense_s", 5.0), lambda f: pv(ml=ml * f)),
            Phase("spin", "EXECUTING", r.spin_time_s,
                  lambda f: pv(r.spin_rpm, ml=ml, film=ramp(5 * t, WET_FACTOR * t, f))),
            Phase("soft-bake", "EXECUTING", self.p("prebake_s", 120.0),
                  lambda f: pv(hot=ramp(ROOM_C, bake_c, 5 * f), ml=ml, film=ramp(WET_FACTOR * t, t, f))),
        ], t, ml, False

    def _print(self, r: CoaterRecipe, rng: random.Random) -> Outcome:
        t = self.noisy(rng, r.target_thickness_um)
        ml = layer_volume_ml(r.wafer_diameter_mm, t)
        return [
            Phase("align", "SETUP", self.p("print_align_s", 30.0), lambda f: pv()),
            Phase("print", "EXECUTING", self.p("print_s", 20.0), lambda f: pv(ml=ml * f, film=t * f)),
            Phase("level", "EXECUTING", self.p("level_s", 120.0), lambda f: pv(ml=ml, film=t)),
        ], t, ml, False

    def _pot(self, r: CoaterRecipe, rng: random.Random) -> Outcome:
        t = self.noisy(rng, r.target_thickness_um)
        ml = layer_volume_ml(r.wafer_diameter_mm, t)
        return [
            Phase("prime", "SETUP", self.p("prime_s", 10.0), lambda f: pv()),
            Phase("dispense", "EXECUTING", ml / self.p("pot_ml_s", 0.2), lambda f: pv(ml=ml * f, film=t * f)),
            Phase("level", "EXECUTING", self.p("level_s", 120.0), lambda f: pv(ml=ml, film=t)),
        ], t, ml, False

    def _film_laminate(self, r: CoaterRecipe, rng: random.Random) -> Outcome:
        t = self.noisy(rng, r.target_thickness_um)
        ml = layer_volume_ml(r.wafer_diameter_mm, t)
        roll_c = self.p("laminate_c", 90.0)
        return [
            Phase("align", "SETUP", self.p("laminate_align_s", 30.0), lambda f: pv()),
            Phase("laminate", "EXECUTING", r.wafer_diameter_mm / self.p("laminate_mm_s", 5.0),
                  lambda f: pv(hot=roll_c, film=t * f)),
        ], t, ml, False

    def _cure(self, r: CoaterRecipe, rng: random.Random) -> Outcome:
        t0 = r.incoming_thickness_um
        t = self.noisy(rng, t0 * (1 - self.p(f"shrink_{r.material}", CURE_SHRINK[r.material])))
        t_ramp = t0 + (t - t0) * RAMP_SHARE
        peak = self.noisy(rng, r.cure_temp_c)
        up_s = (peak - ROOM_C) / r.ramp_c_per_min * 60
        down_s = (peak - COOL_END_C) / r.ramp_c_per_min * 60
        return [
            Phase("purge", "SETUP", self.p("purge_s", 300.0), lambda f: pv(film=t0)),
            Phase("ramp", "EXECUTING", up_s,
                  lambda f: pv(hot=ramp(ROOM_C, peak, f), film=ramp(t0, t_ramp, f))),
            Phase("hold", "EXECUTING", r.cure_time_s, lambda f: pv(hot=peak, film=ramp(t_ramp, t, f))),
            Phase("cool", "EXECUTING", down_s, lambda f: pv(hot=ramp(peak, COOL_END_C, f), film=t)),
        ], t, 0.0, False

    def _expose_develop(self, r: CoaterRecipe, rng: random.Random) -> Outcome:
        t0 = r.incoming_thickness_um
        m = r.material
        t = self.noisy(rng, t0 * (1 - self.p("dark_loss", 0.02)))  # unexposed film lost in the developer
        dose_needed = self.p(f"clear_dose_{m}", CLEAR_DOSE_MJ_CM2_PER_UM[m]) * t0
        develop_needed_s = t0 / self.p(f"develop_um_min_{m}", DEVELOP_UM_MIN[m]) * 60
        opened = r.exposure_dose_mj_cm2 >= dose_needed and r.develop_time_s >= develop_needed_s
        return [
            Phase("align", "SETUP", self.p("expose_align_s", 60.0), lambda f: pv(film=t0)),
            Phase("expose", "EXECUTING", r.exposure_dose_mj_cm2 / self.p("lamp_mw_cm2", 20.0),
                  lambda f: pv(film=t0)),
            Phase("develop", "EXECUTING", r.develop_time_s, lambda f: pv(300.0, film=ramp(t0, t, f))),
            Phase("rinse-dry", "EXECUTING", self.p("rinse_s", 60.0), lambda f: pv(2000.0, film=t)),
        ], t, 0.0, opened

    def _strip(self, r: CoaterRecipe, rng: random.Random) -> Outcome:
        t0 = r.incoming_thickness_um
        strip_s = t0 / self.p("strip_um_min", 5.0) * 60
        bath_c = self.p("strip_c", 60.0)  # heated stripper on a heated chuck
        return [
            Phase("prime", "SETUP", self.p("prime_s", 30.0), lambda f: pv(film=t0)),
            Phase("strip", "EXECUTING", strip_s, lambda f: pv(300.0, bath_c, film=ramp(t0, 0.0, f))),
            Phase("rinse-dry", "EXECUTING", self.p("rinse_s", 60.0), lambda f: pv(2000.0)),
        ], 0.0, 0.0, False


def summary(r: CoaterRecipe, film: float, peak_c: float, time_s: float, ml: float,
            opened: bool) -> dict[str, Value]:
    shrink = 100.0 * (1 - film / r.incoming_thickness_um) if r.operation == "cure" else 0.0
    return {"film_thickness_um": round(film, 3), "cure_temp_peak_c": round(peak_c, 2),
            "operation_time_s": round(time_s, 2), "shrinkage_pct": round(shrink, 2),
            "patterns_open": opened, "resin_used_ml": round(ml, 3)}


def values_at(phases: list[Phase], elapsed: float) -> dict[str, Value]:
    """Process values `elapsed` tool seconds into the job (the last phase's end once past it)."""
    now, start = pv(), 0.0
    for ph in phases:
        if elapsed < start:
            break
        now = ph.values(min(1.0, (elapsed - start) / max(ph.duration_s, 1e-9)))
        start += ph.duration_s
    return now


def peak_temp(phases: list[Phase], until: float) -> float:
    """Hottest plate temperature up to `until`; each phase's temperature is monotonic."""
    peak, start = ROOM_C, 0.0
    for ph in phases:
        if until < start:
            break
        f = min(1.0, (until - start) / max(ph.duration_s, 1e-9))
        peak = max(peak, float(ph.values(0.0)["hotplate_temp_c"]), float(ph.values(f)["hotplate_temp_c"]))
        start += ph.duration_s
    return peak
