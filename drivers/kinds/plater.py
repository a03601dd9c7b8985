"""Electroplater: Cu re-wiring, posts and via fill (one step in A12), and pad metal (Al, Ni, Au).

The rectifier limit (total current = J x area) is not a single field's range, so a field validator on
`plated_area_cm2` checks it against the kind's largest rectifier: the driver refuses before sending and
the emulator refuses with the same text. A tool configured with a smaller rectifier refuses in its physics.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, ValidationInfo, field_validator

from drivers.judgement import Band, Limit, ResultCheck
from drivers.tool import Recipe, Result, Tool

RECTIFIER_MAX_A = 60.0  # the kind's rectifier rating, amperes
FARADAY_C_MOL = 96485.33
# metal: (molar mass g/mol, electrons per ion, density g/cm3): what Faraday's law needs of a metal
METALS: dict[str, tuple[float, int, float]] = {
    "Cu": (63.546, 2, 8.96), "Ni": (58.693, 2, 8.908), "Au": (196.967, 1, 19.32), "Al": (26.982, 3, 2.70),
}


def faraday_um_per_s(metal: str, j_ma_cm2: float, efficiency: float = 1.0) -> float:
    """Growth rate in um per second at current density `j_ma_cm2` and a cathode efficiency."""
    molar, n, rho = METALS[metal]
    cm_per_s = (j_ma_cm2 / 1000.0) * molar / (n * FARADAY_C_MOL * rho)
    return cm_per_s * 1e4 * efficiency


class PlaterRecipe(Recipe):
    rectifier_max_a: ClassVar[float] = RECTIFIER_MAX_A

    metal: Literal["Cu", "Ni", "Au", "Al"]
    current_density_ma_cm2: float = Field(
        default=20, ge=1, le=50, description="cathode current density; Cu acid bath 10-30 typical"
    )
    plating_time_s: float = Field(ge=10, le=36000, description="rectifier-on time")
    plated_area_cm2: float = Field(
        ge=1, le=2000, description="open (plated) area of the load; a 300 mm wafer is ~707 cm2"
    )
    bath_temp_c: float = Field(default=25, ge=18, le=35, description="bath temperature setpoint")
    fill_vias: bool = Field(default=False, description="via-filling chemistry and waveform (step A12)")

    @field_validator("plated_area_cm2")
    @classmethod
    def _within_rectifier(cls, area: float, info: ValidationInfo) -> float:
        j = info.data.get("current_density_ma_cm2")
        if j is not None and j * area / 1000.0 > cls.rectifier_max_a:
            raise ValueError(
                f"total current {j * area / 1000.0:.1f} A ({j:g} mA/cm2 x {area:g} cm2) exceeds the "
                f"{cls.rectifier_max_a:g} A rectifier"
            )
        return area

    def max_duration_s(self) -> float:
        return 1.1 * self.plating_time_s + 1800  # pre-wet, rinse/dry and margin

    def faraday_thickness_um(self) -> float:
        """What the charge deposits at 100 % cathode efficiency: the most a job can plate."""
        return faraday_um_per_s(self.metal, self.current_density_ma_cm2) * self.plating_time_s

    def current_a(self) -> float:
        return self.current_density_ma_cm2 * self.plated_area_cm2 / 1000.0


class PlaterResult(Result):
    plated_thickness_um: float
    charge_c: float
    via_fill_pct: float
    bath_temp_avg_c: float


class Plater(Tool[PlaterRecipe, PlaterResult]):
    kind = "plater"
    stack_actions = frozenset({"plate", "edge_traces", "layer"})
    recipe_model = PlaterRecipe
    result_model = PlaterResult
    interlock_inputs = ("door_closed", "emo_ok", "bath_level_ok", "exhaust_ok")
    process_values = ("rectifier_current_a", "bath_temperature_c", "deposited_um")
    run_bands = (
        Band(name="rectifier_current_band", variable="rectifier_current_a",
             high=Limit(of="current_a", factor=1.1)),
        Band(name="bath_temp_band", variable="bath_temperature_c", high=Limit(value=40), low=Limit(value=15)),
    )
    result_checks = (  # Faraday's law at 100 % efficiency; real baths lose 0-15 % to hydrogen
        ResultCheck(name="plated_thickness", result="plated_thickness_um",
                    target=Limit(of="faraday_thickness_um"), below_pct=25, above_pct=5),
    )
