"""Ball mounter: flux and place solder balls on the terminal sites, then reflow them in a profile oven.

Flows A15, B14, C3/C4, C7/C8 and D. The reflow peak must sit 20-40 C above the alloy's liquidus
(process-flows.md "ball_mounter" row). The alloys and their melting ranges are data
(configs/materials/alloys.yaml); the sequencer reads the same table for seed 002's rule that a second
reflow must not remelt the first terminal (first alloy melts higher).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from drivers.configs import SHIPPED
from drivers.judgement import Band, Limit, ResultCheck
from drivers.tool import Recipe, Result, Tool
from drivers.validation import read_yaml, validate_model

ALLOY_FILE = SHIPPED / "materials" / "alloys.yaml"


class Alloy(BaseModel):
    """One solder alloy's melting range, degC."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)
    solidus_c: float = Field(ge=100, le=400, description="starts to melt")
    liquidus_c: float = Field(ge=100, le=400, description="fully molten: the reflow window starts here")
    note: str = ""

    @model_validator(mode="after")
    def _range(self) -> Self:
        if self.solidus_c > self.liquidus_c:
            raise ValueError(f"solidus {self.solidus_c:g} C above liquidus {self.liquidus_c:g} C")
        return self


class AlloyTable(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    alloys: dict[str, Alloy] = Field(min_length=1)


def load_alloys(path: Path = ALLOY_FILE) -> dict[str, Alloy]:
    """The alloy table (configs/materials/alloys.yaml); ConfigError names the file, alloy and field."""
    return validate_model(AlloyTable, read_yaml(path), str(path)).alloys


ALLOYS: dict[str, Alloy] = load_alloys()
if TYPE_CHECKING:
    AlloyName = str
else:  # the recipe's allowed alloys are the table's: profiles, flows and errors list them
    AlloyName = Literal[tuple(ALLOYS)]
REFLOW_ABOVE_LIQUIDUS_C = (20.0, 40.0)  # process-flows.md: reflow peak 20-40 C above liquidus
PLACE_S_PER_BALL = 0.002  # stencil ball-drop head, ~200 s for 100k balls on a 300 mm wafer


def reflow_window_c(alloy: str) -> tuple[float, float]:
    """The allowed reflow peak (low, high) for an alloy, degC."""
    liquidus = ALLOYS[alloy].liquidus_c
    return liquidus + REFLOW_ABOVE_LIQUIDUS_C[0], liquidus + REFLOW_ABOVE_LIQUIDUS_C[1]


class BallMounterRecipe(Recipe):
    operation: Literal["mount", "reflow", "mount_reflow"]
    alloy: AlloyName
    ball_count: int = Field(ge=1, le=100000, description="terminal sites on the wafer or strip")
    peak_temp_c: float = Field(ge=150, le=350, description="reflow peak; checked against the alloy")
    ball_diameter_um: float = Field(default=300, ge=60, le=1000, description="selects stencil and head")
    time_above_liquidus_s: float = Field(default=60, ge=40, le=150, description="J-STD-020 style TAL")

    @model_validator(mode="after")
    def _reflow_window(self) -> Self:
        if self.operation == "mount":
            return self  # no reflow: the peak is not used
        low, high = reflow_window_c(self.alloy)
        if not low <= self.peak_temp_c <= high:
            liquidus = ALLOYS[self.alloy].liquidus_c
            raise ValueError(
                f"{self.alloy} reflow peak must be {low:g}-{high:g} C (liquidus {liquidus:g} C + 20-40 C),"
                f" got {self.peak_temp_c:g} C"
            )
        return self

    def measured_peak_window_c(self) -> tuple[float, float]:
        """The measured reflow peak the joint needs: the alloy's window, 10 C of thermocouple margin each
        side (a peak under liquidus + 10 C did not wet; one far above it cooked the package)."""
        low, high = reflow_window_c(self.alloy)
        return low - 10, high + 10

    def max_duration_s(self) -> float:
        place_s = self.ball_count * PLACE_S_PER_BALL if self.operation != "reflow" else 0.0
        return 1800 + 5 * place_s + 3 * self.time_above_liquidus_s


class BallMounterResult(Result):
    balls_placed: int
    balls_missing: int
    measured_peak_temp_c: float
    measured_time_above_liquidus_s: float
    reflowed: bool


class BallMounter(Tool[BallMounterRecipe, BallMounterResult]):
    kind = "ball_mounter"
    stack_actions = frozenset({"layer", "reflow", "update"})
    recipe_model = BallMounterRecipe
    result_model = BallMounterResult
    interlock_inputs = ("door_closed", "emo_ok", "n2_ok", "exhaust_ok")
    process_values = ("oven_temp_c", "balls_placed_now", "conveyor_speed_mm_s")
    run_bands = (
        Band(name="oven_over_temp", variable="oven_temp_c", high=Limit(of="peak_temp_c", offset=15)),
    )
    result_checks = (
        ResultCheck(name="reflow_peak", result="measured_peak_temp_c", window="measured_peak_window_c",
                    when={"operation": ("reflow", "mount_reflow")}),
        ResultCheck(name="balls_placed", result="balls_placed", target=Limit(of="ball_count"),  # rework
                    below_pct=0.5, above_pct=0, when={"operation": ("mount", "mount_reflow")}),
    )
