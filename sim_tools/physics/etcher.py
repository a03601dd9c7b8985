"""Etcher physics: rate per process scaled by sqrt(power / reference power), seeded rate scatter.

Endpoint mode: the film clears at depth / actual rate, the product emission line (OES) drops, and the
tool overetches for `overetch_pct` of that time; the overetch removes stop layer at rate / selectivity.
So depth is steady and time varies. Timed mode runs depth / nominal rate (+ overetch): time is steady and
depth follows the actual rate; a stop layer still slows the etch once exposed.
"""

from __future__ import annotations

import math
import random

from drivers.kinds.etcher import EtcherRecipe
from drivers.profiles.base import Value
from drivers.tool import Recipe
from sim_tools.physics.base import Phase, Physics, Plan, ramp

BASE_MTORR = 0.1  # load-locked chamber idles pumped down
# process: (rate um/min at the reference power, reference power W, process pressure mTorr)
PROCESSES: dict[str, tuple[float, float, float]] = {
    "si_bosch": (10.0, 2000.0, 30.0),  # SF6/C4F8 ICP; Si 5-20 um/min (process-flows.md)
    "polymer_open": (1.0, 300.0, 100.0),  # O2/CF4 RIE of polyimide/epoxy; 0.5-2 um/min (process-flows.md)
    "seed_removal": (0.1, 500.0, 10.0),  # Ar/Cl2 ion-assisted Cu, Ti, Cr; ~0.05-0.2 um/min
    "al_pattern": (0.5, 500.0, 15.0),  # Cl2/BCl3 RIE of Al pads; ~0.3-1 um/min
    "dielectric": (0.2, 500.0, 50.0),  # CF4/CHF3 RIE of SiN/PSG; ~0.1-0.3 um/min
    # CO2/UV laser through laminate and filled resin, at atmosphere: ~100 um/min of via depth per strip
    # at 100 W (thousands of holes per strip, each drilled in a few ms); `rf_power_w` is the laser power
    "laser_drill": (100.0, 100.0, 760000.0),
}
SELECTIVITY = 50.0  # etched film : stop layer
OES_CLEARED = 0.2  # product-line emission once the film has cleared, relative to the main etch


class EtcherPhysics(Physics):
    kind = "etcher"
    PARAMS = (
        "oes_cleared", "power_exponent", "pump_out_s", "selectivity", "stabilize_s", "rate_{process}"
    )
    recipe_model = EtcherRecipe

    def idle_values(self) -> dict[str, Value]:
        return {"chamber_pressure_mtorr": BASE_MTORR, "rf_power_fwd_w": 0.0, "oes_intensity": 0.0,
                "etched_um": 0.0}

    def initial_results(self) -> dict[str, Value]:
        return {"etched_depth_um": 0.0, "etch_time_s": 0.0, "endpoint_detected": False,
                "endpoint_time_s": 0.0}

    def rate_um_s(self, process: str, power_w: float) -> float:
        """Nominal rate: sub-linear in power (radical supply saturates), per tool second."""
        base, ref_w, _ = PROCESSES[process]
        base = self.params.get(f"rate_{process}", base)
        return base * (power_w / ref_w) ** self.params.get("power_exponent", 0.5) / 60.0

    def plan(self, recipe: Recipe, rng: random.Random) -> Plan:
        assert isinstance(recipe, EtcherRecipe)
        stab_s = self.params.get("stabilize_s", 30.0)
        pump_s = self.params.get("pump_out_s", 20.0)
        sel = self.params.get("selectivity", SELECTIVITY)
        oes_low = self.params.get("oes_cleared", OES_CLEARED)
        p_proc = PROCESSES[recipe.process][2]
        nominal = self.rate_um_s(recipe.process, recipe.rf_power_w)
        actual = max(0.5 * nominal, self.noisy(rng, nominal))  # the wafer's real rate today
        layer = recipe.target_depth_um
        has_stop = recipe.stop_layer != "none"
        oe = recipe.overetch_pct / 100.0
        clear_s = layer / actual if has_stop else math.inf
        detected = recipe.endpoint_detect and has_stop
        total_s = clear_s * (1 + oe) if detected else layer / nominal * (1 + oe)
        main_s = min(clear_s, total_s)
        over_s = total_s - main_s
        depth = actual * main_s + actual * over_s / sel

        def depth_at(t: float) -> float:
            return actual * min(t, main_s) + actual * max(0.0, t - main_s) / sel

        def stabilizing(f: float) -> dict[str, Value]:
            return {"chamber_pressure_mtorr": ramp(BASE_MTORR, p_proc, f)}

        def plasma(name: str, oes: float, t0: float, dur: float) -> Phase:
            def values(f: float) -> dict[str, Value]:
                return {"chamber_pressure_mtorr": p_proc, "rf_power_fwd_w": recipe.rf_power_w,
                        "oes_intensity": oes, "etched_um": depth_at(t0 + f * dur)}

            return Phase(name, "EXECUTING", dur, values)

        def pumping(f: float) -> dict[str, Value]:
            return {"chamber_pressure_mtorr": ramp(p_proc, BASE_MTORR, f), "etched_um": depth}

        def partial(elapsed: float) -> dict[str, Value]:
            t = min(total_s, max(0.0, elapsed - stab_s))
            seen = detected and t >= clear_s
            return {"etched_depth_um": round(depth_at(t), 4), "etch_time_s": round(t, 2),
                    "endpoint_detected": seen, "endpoint_time_s": round(clear_s, 2) if seen else 0.0}

        phases = [Phase("stabilize", "SETUP", stab_s, stabilizing), plasma("etch", 1.0, 0.0, main_s)]
        if over_s > 0:
            phases.append(plasma("overetch", oes_low, main_s, over_s))
        phases.append(Phase("pump-out", "EXECUTING", pump_s, pumping))
        results: dict[str, Value] = {
            "etched_depth_um": round(depth, 4),
            "etch_time_s": round(total_s, 2),
            "endpoint_detected": detected,
            "endpoint_time_s": round(clear_s, 2) if detected else 0.0,
        }
        return Plan(phases, results, partial=partial, meta={"rate_um_s": actual, "clear_s": clear_s})
