"""Sputterer (PVD): pump down to base pressure, then deposit Al, Cu, Ti or Cr to a thickness."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from drivers.judgement import Band, Limit, ResultCheck
from drivers.tool import Recipe, Result, Tool

# Slowest deposition rate the kind promises at the lowest power (nm per tool second); bounds jobs.
MIN_RATE_NM_S = 0.1


class SputtererRecipe(Recipe):
    material: Literal["Al", "Cu", "Ti", "Cr"]
    thickness_nm: float = Field(ge=10, le=3000, description="target film thickness")
    power_w: float = Field(default=2000, ge=100, le=6000, description="DC target power")
    base_pressure_torr: float = Field(
        default=5e-6, ge=1e-8, le=5e-6, description="strike only below this pressure"
    )

    def max_duration_s(self) -> float:
        return 3600 + self.thickness_nm / MIN_RATE_NM_S


class SputtererResult(Result):
    film_thickness_nm: float
    deposition_time_s: float
    pumpdown_time_s: float
    base_pressure_reached_torr: float


class Sputterer(Tool[SputtererRecipe, SputtererResult]):
    kind = "sputterer"
    stack_actions = frozenset({"layer"})
    recipe_model = SputtererRecipe
    result_model = SputtererResult
    interlock_inputs = ("door_closed", "cooling_water_ok", "gas_ok", "emo_ok")
    process_values = ("chamber_pressure_torr", "deposited_nm")
    run_bands = (  # the deposition monitor must not read past the target; a chamber never exceeds 1 atm
        Band(name="deposition_overshoot", variable="deposited_nm", high=Limit(of="thickness_nm", factor=1.1)),
        Band(name="chamber_overpressure", variable="chamber_pressure_torr", high=Limit(value=800)),
    )
    result_checks = (
        ResultCheck(name="film_thickness", result="film_thickness_nm", target=Limit(of="thickness_nm")),
    )
