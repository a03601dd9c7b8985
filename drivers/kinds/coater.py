"""Coater: spin, print, pot or laminate polyimide, epoxy or resist; cure; expose and develop; strip.

One flat recipe serves every operation (the profile generator needs flat fields); fields an operation
does not use are ignored by it. Combinations the process cannot run (a polyimide cure below imidization
temperature, an epoxy cure above its limit, stripping a cured resin) are refused by the model validator.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, model_validator

from drivers.judgement import Band, Limit, ResultCheck
from drivers.tool import Recipe, Result, Tool

Operation = Literal["spin_coat", "print", "pot", "film_laminate", "cure", "expose_develop", "strip"]
Material = Literal["polyimide", "epoxy", "resist"]

# Cure (bake) windows, degC: polyimide and epoxy from process-flows.md; resist soft/hard bake (public
# typical values for thick positive resists).
CURE_WINDOWS_C: dict[str, tuple[float, float]] = {
    "polyimide": (200.0, 350.0),
    "epoxy": (150.0, 175.0),
    "resist": (80.0, 150.0),
}

# Slowest rates the kind promises (tool units); they bound jobs in max_duration_s.
MIN_DISPENSE_ML_S = 0.05  # print/pot resin delivery
MIN_LAMINATE_MM_S = 1.0  # film lamination roll speed
MIN_LAMP_MW_CM2 = 5.0  # exposure lamp intensity
MIN_STRIP_UM_S = 1.0 / 60.0  # resist strip rate, 1 um/min
FIXED_STEPS_S = 1800.0  # purge, align, level, bake and rinse steps with margin


def layer_volume_ml(wafer_diameter_mm: float, thickness_um: float) -> float:
    """Resin volume of a layer over a whole wafer: area (cm2) x thickness (cm)."""
    area_cm2 = math.pi * (wafer_diameter_mm / 20.0) ** 2
    return area_cm2 * thickness_um * 1e-4


class CoaterRecipe(Recipe):
    operation: Operation
    material: Material
    wafer_diameter_mm: float = Field(default=300, ge=100, le=300, description="wafer (or panel) size")
    spin_rpm: float = Field(default=2000, ge=500, le=6000, description="spin_coat: final spin speed")
    spin_time_s: float = Field(default=30, ge=5, le=300, description="spin_coat: time at final speed")
    target_thickness_um: float = Field(
        default=20, ge=1, le=500, description="print/pot/film_laminate: layer thickness"
    )
    incoming_thickness_um: float = Field(
        default=10, ge=0.5, le=500, description="cure/expose_develop/strip: layer already on the wafer"
    )
    cure_temp_c: float = Field(default=250, ge=50, le=400, description="cure: hold temperature")
    cure_time_s: float = Field(default=3600, ge=60, le=14400, description="cure: hold time")
    ramp_c_per_min: float = Field(default=5, ge=1, le=20, description="cure: heating and cooling ramp")
    exposure_dose_mj_cm2: float = Field(default=300, ge=10, le=2000, description="expose_develop: dose")
    develop_time_s: float = Field(default=120, ge=10, le=900, description="expose_develop: develop time")

    @model_validator(mode="after")
    def _combination(self) -> CoaterRecipe:
        if self.operation == "cure":
            lo, hi = CURE_WINDOWS_C[self.material]
            if not lo <= self.cure_temp_c <= hi:
                raise ValueError(
                    f"{self.material} cure needs {lo:g}-{hi:g} C, got {self.cure_temp_c:g} C"
                )
        if self.operation == "strip" and self.material != "resist":
            raise ValueError(f"strip removes resist only; cured {self.material} is not stripped")
        if self.operation == "pot" and self.material == "resist":
            raise ValueError("potting is for sealing resin (epoxy or polyimide), not resist")
        if self.operation == "expose_develop" and self.material == "epoxy":
            raise ValueError("expose_develop needs a photosensitive layer: resist or polyimide")
        return self

    def spindle_limit_rpm(self) -> float:
        """Highest spindle speed of the operation, +10 %: the spin speed, else the track's 2000 rpm
        rinse-dry (develop and strip turn slower)."""
        return 1.1 * (self.spin_rpm if self.operation == "spin_coat" else 2000.0)

    def hotplate_limit_c(self) -> float:
        """Hottest plate of the operation: the cure setpoint + 15 C, else a soft bake or a laminating
        roll, which never need more than 150 C."""
        return self.cure_temp_c + 15 if self.operation == "cure" else 150.0

    def max_duration_s(self) -> float:
        work = {
            "spin_coat": self.spin_time_s,
            "print": layer_volume_ml(self.wafer_diameter_mm, self.target_thickness_um) / MIN_DISPENSE_ML_S,
            "pot": layer_volume_ml(self.wafer_diameter_mm, self.target_thickness_um) / MIN_DISPENSE_ML_S,
            "film_laminate": self.wafer_diameter_mm / MIN_LAMINATE_MM_S,
            "cure": 2 * (self.cure_temp_c - 20) / self.ramp_c_per_min * 60 + self.cure_time_s,
            "expose_develop": self.exposure_dose_mj_cm2 / MIN_LAMP_MW_CM2 + self.develop_time_s,
            "strip": self.incoming_thickness_um / MIN_STRIP_UM_S,
        }[self.operation]
        return 2 * work + FIXED_STEPS_S


class CoaterResult(Result):
    film_thickness_um: float  # layer left on the wafer (0 after a complete strip)
    cure_temp_peak_c: float  # hottest plate/oven temperature of the job
    operation_time_s: float
    shrinkage_pct: float  # cure: relative thickness lost; 0 for other operations
    patterns_open: bool  # expose_develop: openings cleared to the layer below
    resin_used_ml: float


class Coater(Tool[CoaterRecipe, CoaterResult]):
    kind = "coater"
    stack_actions = frozenset({"layer", "remove", "update"})
    recipe_model = CoaterRecipe
    result_model = CoaterResult
    interlock_inputs = ("door_closed", "emo_ok", "exhaust_ok", "n2_ok")
    process_values = ("spindle_speed_rpm", "hotplate_temp_c", "dispensed_ml", "film_now_um")
    run_bands = (
        Band(name="spindle_overspeed", variable="spindle_speed_rpm",
             high=Limit(of="spindle_limit_rpm")),
        Band(name="hotplate_over_temp", variable="hotplate_temp_c", high=Limit(of="hotplate_limit_c")),
    )
    result_checks = (  # printed, potted and laminated layers have a target; cure and strip a known end
        ResultCheck(name="layer_thickness", result="film_thickness_um",
                    target=Limit(of="target_thickness_um"),
                    when={"operation": ("print", "pot", "film_laminate")}),
        ResultCheck(name="cured_thickness", result="film_thickness_um",
                    target=Limit(of="incoming_thickness_um"), below_pct=45, above_pct=2,
                    when={"operation": ("cure",)}),
        ResultCheck(name="patterns_open", result="patterns_open", equals=True,
                    when={"operation": ("expose_develop",)}),
        ResultCheck(name="stripped", result="film_thickness_um", equals=0.0, when={"operation": ("strip",)}),
    )
