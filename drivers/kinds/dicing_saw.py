"""Dicing saw: spindle up, cooling water on, a number of straight cuts at a feed speed."""

from __future__ import annotations

from pydantic import Field

from drivers.judgement import Band, Limit, ResultCheck
from drivers.tool import Recipe, Result, Tool

INDEX_S = 2.0  # table index between cuts, tool seconds (emulator default, bounds jobs)


class DicingSawRecipe(Recipe):
    spindle_rpm: float = Field(ge=20000, le=60000, description="blade spindle speed")
    feed_mm_s: float = Field(ge=1, le=300, description="table feed; 5-100 typical, slow for resin")
    cut_count: int = Field(ge=1, le=2000, description="number of straight cuts")
    cut_length_mm: float = Field(ge=1, le=310, description="length of each cut")

    def max_duration_s(self) -> float:
        per_cut = self.cut_length_mm / self.feed_mm_s + INDEX_S
        return 2 * self.cut_count * per_cut + 600


class DicingSawResult(Result):
    cuts_completed: int
    cut_time_s: float
    blade_wear_um: float


class DicingSaw(Tool[DicingSawRecipe, DicingSawResult]):
    kind = "dicing_saw"
    stack_actions = frozenset({"dice"})
    recipe_model = DicingSawRecipe
    result_model = DicingSawResult
    interlock_inputs = ("door_closed", "cooling_water_ok", "emo_ok")
    process_values = ("spindle_speed_rpm", "cuts_done", "cooling_flow_lpm")
    run_bands = (
        Band(name="spindle_overspeed", variable="spindle_speed_rpm",
             high=Limit(of="spindle_rpm", factor=1.1)),
    )
    result_checks = (
        ResultCheck(name="cut_count", result="cuts_completed", target=Limit(of="cut_count"),
                    below_pct=0, above_pct=0),
    )
