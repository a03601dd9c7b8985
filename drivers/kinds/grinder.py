"""Grinder: back-grind, CMP or surface polish down to a target thickness read by an in-line gauge.

Back-grind is feed-controlled (the wheel's down-feed is the removal rate); CMP and polish remove at a
Preston rate, proportional to head pressure times platen speed. The gauge stops the job at the target.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from drivers.judgement import Band, Limit, ResultCheck
from drivers.tool import Recipe, Result, Tool

# Spindle windows per mode, rpm: grinding wheel vs CMP/polish platen (public typical values).
SPINDLE_WINDOWS_RPM: dict[str, tuple[float, float]] = {
    "back_grind": (1000.0, 7000.0),
    "cmp": (20.0, 150.0),
    "polish": (20.0, 150.0),
}
MIN_WAFER_UM = 50.0  # thinnest wafer of the flows (process-flows.md A1); resin/posts polish may go lower
# Slowest Preston coefficient the kind promises, um/min per (kPa x rpm); bounds CMP/polish jobs.
MIN_PRESTON_UM_MIN_KPA_RPM = 5e-5
FIXED_STEPS_S = 1800.0  # chuck, spin-up, spark-out/rinse with margin


class GrinderRecipe(Recipe):
    mode: Literal["back_grind", "cmp", "polish"]
    start_thickness_um: float = Field(ge=50, le=1000, description="incoming thickness the gauge finds")
    target_thickness_um: float = Field(ge=10, le=1000, description="stop when the gauge reads this")
    spindle_rpm: float = Field(default=4800, ge=20, le=7000, description="wheel (grind) or platen speed")
    feed_um_s: float = Field(default=2.0, ge=0.5, le=5.0, description="back_grind: wheel down-feed")
    down_pressure_kpa: float = Field(default=20, ge=7, le=35, description="cmp/polish: head pressure")

    @model_validator(mode="after")
    def _combination(self) -> GrinderRecipe:
        if self.target_thickness_um >= self.start_thickness_um:
            raise ValueError(
                f"target {self.target_thickness_um:g} um must be below the start "
                f"{self.start_thickness_um:g} um: a grinder only removes"
            )
        if self.mode == "back_grind" and self.target_thickness_um < MIN_WAFER_UM:
            raise ValueError(f"back_grind target below {MIN_WAFER_UM:g} um: the wafer would break")
        lo, hi = SPINDLE_WINDOWS_RPM[self.mode]
        if not lo <= self.spindle_rpm <= hi:
            raise ValueError(f"{self.mode} spindle needs {lo:g}-{hi:g} rpm, got {self.spindle_rpm:g}")
        return self

    def removal_um(self) -> float:
        return self.start_thickness_um - self.target_thickness_um

    def max_duration_s(self) -> float:
        if self.mode == "back_grind":
            work = self.removal_um() / self.feed_um_s
        else:
            rate_um_min = MIN_PRESTON_UM_MIN_KPA_RPM * self.down_pressure_kpa * self.spindle_rpm
            work = self.removal_um() / rate_um_min * 60
        return 2 * work + FIXED_STEPS_S


class GrinderResult(Result):
    final_thickness_um: float  # gauge reading after spark-out / rinse
    removed_um: float
    process_time_s: float  # time removing material (chucking, spin-up and spark-out excluded)
    removal_rate_um_min: float
    surface_roughness_nm: float  # Ra; 0 when not measured (aborted job)


class Grinder(Tool[GrinderRecipe, GrinderResult]):
    kind = "grinder"
    stack_actions = frozenset({"thin", "planarize"})
    recipe_model = GrinderRecipe
    result_model = GrinderResult
    interlock_inputs = ("door_closed", "emo_ok", "cooling_water_ok", "vacuum_ok")
    process_values = ("gauge_thickness_um", "spindle_speed_rpm", "slurry_flow_ml_min", "coolant_flow_lpm")
    run_bands = (
        Band(name="spindle_overspeed", variable="spindle_speed_rpm",
             high=Limit(of="spindle_rpm", factor=1.1)),
        Band(name="gauge_above_incoming", variable="gauge_thickness_um",  # a gauge that reads thicker
             high=Limit(of="start_thickness_um", factor=1.05)),         # than the incoming wafer is wrong
    )
    result_checks = (
        ResultCheck(name="final_thickness", result="final_thickness_um",
                    target=Limit(of="target_thickness_um"), below_pct=3, above_pct=3),
    )
