"""Plasma etcher (RIE / Bosch): Si through-holes, polymer opening, seed/barrier removal, Al pads, SiN/PSG.

`target_depth_um` is the thickness to remove down to `stop_layer` (for si_bosch: the wafer thickness).
With `endpoint_detect` and a stop layer the tool stops on the optical-emission step plus `overetch_pct`
of that time; otherwise it etches for the time the nominal rate needs (plus overetch).
`laser_drill` is the same contract for a via laser (Flow D): `rf_power_w` is the laser power.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator

from drivers.judgement import Band, Limit, ResultCheck
from drivers.tool import Recipe, Result, Tool

# laser_drill: through vias across carrier / resin / carrier of a strip-level package (Flow D,
# process-flows.md "etcher or laser"); stops on the copper land under them like an etch on its stop layer.
EtchProcess = Literal["si_bosch", "polymer_open", "seed_removal", "al_pattern", "dielectric", "laser_drill"]

# Deepest removal each process is meant for (si_bosch: wafers are 50-725 um), um.
MAX_DEPTH_UM: dict[str, float] = {
    "si_bosch": 800.0, "polymer_open": 100.0, "seed_removal": 2.0, "al_pattern": 5.0, "dielectric": 3.0,
    "laser_drill": 800.0,
}
# Slowest rate the kind promises per process at the lowest power, um/min; bounds jobs.
MIN_RATE_UM_MIN: dict[str, float] = {
    "si_bosch": 0.75, "polymer_open": 0.2, "seed_removal": 0.02, "al_pattern": 0.1, "dielectric": 0.05,
    "laser_drill": 30.0,
}


class EtcherRecipe(Recipe):
    process: EtchProcess
    target_depth_um: float = Field(gt=0, le=800, description="thickness to remove down to the stop layer")
    stop_layer: Literal["none", "oxide", "nitride", "polymer", "metal"] = Field(
        default="none", description="layer under the etched film whose exposure ends the etch"
    )
    endpoint_detect: bool = Field(default=True, description="stop on the OES endpoint (needs a stop layer)")
    overetch_pct: float = Field(default=10, ge=0, le=50, description="extra time after endpoint, % of it")
    rf_power_w: float = Field(ge=50, le=3000, description="RF (ICP source for Bosch) forward power")

    @field_validator("target_depth_um")
    @classmethod
    def _depth_fits_process(cls, depth: float, info: ValidationInfo) -> float:
        process = info.data.get("process")
        if process is not None and depth > MAX_DEPTH_UM[process]:
            raise ValueError(f"{process} removes at most {MAX_DEPTH_UM[process]:g} um")
        return depth

    def max_duration_s(self) -> float:
        etch_min = self.target_depth_um * (1 + self.overetch_pct / 100) / MIN_RATE_UM_MIN[self.process]
        return etch_min * 60 + 1800  # gas stabilisation, pump-out and margin


class EtcherResult(Result):
    etched_depth_um: float
    etch_time_s: float
    endpoint_detected: bool
    endpoint_time_s: float


class Etcher(Tool[EtcherRecipe, EtcherResult]):
    kind = "etcher"
    stack_actions = frozenset({"through_holes", "open_holes", "open_layer", "remove", "update"})
    recipe_model = EtcherRecipe
    result_model = EtcherResult
    interlock_inputs = ("door_closed", "emo_ok", "vacuum_ok", "gas_ok", "cooling_water_ok")
    process_values = ("chamber_pressure_mtorr", "rf_power_fwd_w", "oes_intensity", "etched_um")
    run_bands = (
        Band(name="rf_power_band", variable="rf_power_fwd_w", high=Limit(of="rf_power_w", factor=1.1)),
        Band(name="chamber_pressure_band", variable="chamber_pressure_mtorr", high=Limit(value=500),
             unless={"process": ("laser_drill",)}),  # the via laser works at atmosphere
    )
    result_checks = (  # the overetch adds up to its own share of the depth in timed mode
        ResultCheck(name="etched_depth", result="etched_depth_um", target=Limit(of="target_depth_um"),
                    below_pct=5, above_pct=5, extra_above_pct="overetch_pct"),
    )
