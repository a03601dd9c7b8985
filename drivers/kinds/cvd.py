"""CVD (PECVD): PSG, then SiN passivation over the Al pads (Flow B3), at 200-400 C.

The deadline bounds the slowest job the kind allows: the thickest film at the lowest rate, plus the
heat-up from room temperature at the slowest heater ramp.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from drivers.judgement import Band, Limit, ResultCheck
from drivers.tool import Recipe, Result, Tool

MIN_RATE_NM_MIN = 15.0  # slowest deposition the kind promises (SiN, lowest power, hottest chuck)
MIN_HEAT_C_PER_MIN = 10.0  # slowest susceptor heat-up the kind promises


class CvdRecipe(Recipe):
    film: Literal["PSG", "SiN"]
    thickness_nm: float = Field(ge=50, le=2000, description="target film thickness")
    deposition_temp_c: float = Field(ge=200, le=400, description="susceptor temperature while depositing")
    rf_power_w: float = Field(default=300, ge=50, le=1200, description="13.56 MHz plasma power")

    def max_duration_s(self) -> float:
        heat_s = (self.deposition_temp_c - 20) / MIN_HEAT_C_PER_MIN * 60
        return 3600 + heat_s + self.thickness_nm / MIN_RATE_NM_MIN * 60


class CvdResult(Result):
    film_thickness_nm: float
    deposition_time_s: float
    uniformity_pct: float
    refractive_index: float


class Cvd(Tool[CvdRecipe, CvdResult]):
    kind = "cvd"
    stack_actions = frozenset({"layer"})
    recipe_model = CvdRecipe
    result_model = CvdResult
    interlock_inputs = ("door_closed", "emo_ok", "vacuum_ok", "gas_ok", "exhaust_ok")
    process_values = ("chamber_pressure_torr", "susceptor_temp_c", "deposited_nm")
    run_bands = (
        Band(name="susceptor_temp_band", variable="susceptor_temp_c",
             high=Limit(of="deposition_temp_c", offset=15)),
        Band(name="chamber_overpressure", variable="chamber_pressure_torr", high=Limit(value=800)),
    )
    result_checks = (
        ResultCheck(name="film_thickness", result="film_thickness_nm", target=Limit(of="thickness_nm")),
    )
