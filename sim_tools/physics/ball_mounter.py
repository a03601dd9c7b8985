"""Ball mounter physics: align and flux, place balls, then a four-zone reflow profile.

The oven temperature is piecewise linear (all figures overridable through `params`): preheat from room
at 1.5 C/s to liquidus - 80 C, soak 90 s up to liquidus - 30 C, ramp at 2 C/s to the peak, dwell, cool
at 2 C/s to 50 C at the oven exit (J-STD-020 style: ramp <= 3 C/s, soak 60-120 s, cool <= 6 C/s).
The dwell at the peak makes the time above liquidus (TAL) equal the recipe's; the ramps alone give
(peak - liquidus) x (1/2 + 1/2) s, at most 40 s, so the recipe's TAL >= 40 s is always reachable.
Missing balls are a seeded Poisson draw at `missing_ppm` (20 ppm of sites, typical ball-drop yield).
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable

from drivers.kinds.ball_mounter import ALLOYS, PLACE_S_PER_BALL, BallMounterRecipe
from drivers.profiles.base import Value
from drivers.tool import Recipe
from sim_tools.physics.base import Phase, Physics, Plan

ROOM_C = 25.0
EXIT_C = 50.0
Knots = list[tuple[float, float]]  # (tool seconds since the oven entry, oven temperature)
Values = Callable[[float], dict[str, Value]]


def interp(knots: Knots, t: float) -> float:
    """Oven temperature at time t along the piecewise-linear profile."""
    if t <= knots[0][0]:
        return knots[0][1]
    for (t0, y0), (t1, y1) in itertools.pairwise(knots):
        if t <= t1:
            return y1 if t1 == t0 else y0 + (y1 - y0) * (t - t0) / (t1 - t0)
    return knots[-1][1]


def poisson(rng: random.Random, lam: float) -> int:
    """Seeded Poisson draw (Knuth for small means, normal approximation above 30)."""
    if lam > 30:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, rng.random()
    while p > limit:
        k, p = k + 1, p * rng.random()
    return k


class BallMounterPhysics(Physics):
    kind = "ball_mounter"
    PARAMS = (
        "align_s", "conveyor_mm_s", "cool_c_s", "load_s", "missing_ppm", "place_s_per_ball",
        "preheat_c_s", "reflow_ramp_c_s", "soak_s"
    )
    recipe_model = BallMounterRecipe

    def idle_values(self) -> dict[str, Value]:
        return {"oven_temp_c": ROOM_C, "balls_placed_now": 0, "conveyor_speed_mm_s": 0.0}

    def initial_results(self) -> dict[str, Value]:
        return {"balls_placed": 0, "balls_missing": 0, "measured_peak_temp_c": 0.0,
                "measured_time_above_liquidus_s": 0.0, "reflowed": False}

    def plan(self, recipe: Recipe, rng: random.Random) -> Plan:
        assert isinstance(recipe, BallMounterRecipe)
        p = self.params
        mounting = recipe.operation != "reflow"
        reflowing = recipe.operation != "mount"
        liq = ALLOYS[recipe.alloy].liquidus_c
        up, down = p.get("reflow_ramp_c_s", 2.0), p.get("cool_c_s", 2.0)
        conveyor = p.get("conveyor_mm_s", 12.0)
        missing = min(recipe.ball_count, poisson(rng, recipe.ball_count * p.get("missing_ppm", 20.0) * 1e-6))
        placed = recipe.ball_count - missing if mounting else 0
        place_s = recipe.ball_count * p.get("place_s_per_ball", PLACE_S_PER_BALL) if mounting else 0.0
        peak = max(liq - 30.0, self.noisy(rng, recipe.peak_temp_c))  # the oven's real peak
        dwell = max(0.0, recipe.time_above_liquidus_s - (recipe.peak_temp_c - liq) * (1 / up + 1 / down))
        t1 = (liq - 80.0 - ROOM_C) / p.get("preheat_c_s", 1.5)
        t2 = t1 + p.get("soak_s", 90.0)
        t3 = t2 + (peak - (liq - 30.0)) / up
        t4 = t3 + dwell
        t5 = t4 + (peak - EXIT_C) / down
        knots: Knots = [(0.0, ROOM_C), (t1, liq - 80.0), (t2, liq - 30.0), (t3, peak), (t4, peak),
                        (t5, EXIT_C)]
        t_melt, t_freeze = t2 + 30.0 / up, t4 + (peak - liq) / down  # crossing the liquidus

        if mounting:  # fiducial alignment and flux print, then the balls
            phases = [Phase("align-flux", "SETUP", p.get("align_s", 30.0), lambda _f: {}),
                      Phase("place", "EXECUTING", place_s,
                            lambda f: {"balls_placed_now": math.floor(f * placed)})]
        else:  # balls mounted by an earlier job: load the wafer straight into the oven
            phases = [Phase("load", "SETUP", p.get("load_s", 20.0), lambda _f: {})]
        oven_t0 = sum(ph.duration_s for ph in phases)
        if reflowing:
            for name, a, b in (("preheat", 0.0, t1), ("soak", t1, t2), ("reflow", t2, t4), ("cool", t4, t5)):
                phases.append(Phase(name, "EXECUTING", b - a, self._oven(knots, a, b, placed, conveyor)))

        def oven_results(t: float) -> dict[str, Value]:
            if not reflowing or t <= 0:
                return {"measured_peak_temp_c": 0.0, "measured_time_above_liquidus_s": 0.0, "reflowed": False}
            tal = max(0.0, min(t, t_freeze) - t_melt)
            return {"measured_peak_temp_c": round(interp(knots, min(t, t3)), 2),
                    "measured_time_above_liquidus_s": round(tal, 2), "reflowed": tal > 0}

        def partial(elapsed: float) -> dict[str, Value]:
            f = min(1.0, max(0.0, (elapsed - phases[0].duration_s) / place_s)) if place_s else 0.0
            done = {"balls_placed": math.floor(f * placed), "balls_missing": math.floor(f * missing)}
            return done | oven_results(elapsed - oven_t0)

        results: dict[str, Value] = {"balls_placed": placed, "balls_missing": missing if mounting else 0}
        results |= oven_results(t5)
        return Plan(phases, results, partial=partial, meta={"knots": knots, "oven_t0": oven_t0})

    @staticmethod
    def _oven(knots: Knots, a: float, b: float, placed: int, conveyor: float) -> Values:
        """Process values of one oven zone, the board riding the conveyor from a to b."""

        def values(f: float) -> dict[str, Value]:
            return {"oven_temp_c": round(interp(knots, a + f * (b - a)), 2), "balls_placed_now": placed,
                    "conveyor_speed_mm_s": conveyor}

        return values
