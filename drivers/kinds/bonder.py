"""Wafer bonder: adhesive wafer-to-wafer bond under vacuum with a heated chuck and a bond force."""

from __future__ import annotations

from pydantic import Field

from drivers.tool import Recipe, Result, Tool


class BonderRecipe(Recipe):
    temp_c: float = Field(ge=150, le=250, description="chuck bond temperature, degC")
    force_kn: float = Field(ge=1, le=60, description="bond force, kN")
    hold_s: float = Field(ge=60, le=7200, description="time at temperature and force, s")
    vacuum_mbar: float = Field(default=0.01, gt=0, le=10, description="chamber vacuum setpoint")
    ramp_c_per_min: float = Field(default=20, ge=1, le=60, description="chuck heating ramp")

    def max_duration_s(self) -> float:
        ramp_s = (self.temp_c - 20) / self.ramp_c_per_min * 60
        return 2 * (ramp_s + self.hold_s) + 1800  # pump-down, cool-down and margin


class BonderResult(Result):
    peak_temp_c: float
    peak_force_kn: float
    hold_time_s: float
    min_pressure_mbar: float


class Bonder(Tool[BonderRecipe, BonderResult]):
    kind = "bonder"
    recipe_model = BonderRecipe
    result_model = BonderResult
    interlock_inputs = ("door_closed", "vacuum_ok", "cooling_water_ok", "emo_ok")
    process_values = ("chuck_temp_c", "applied_force_kn", "chamber_pressure_mbar")
