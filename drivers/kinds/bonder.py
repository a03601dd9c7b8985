"""Bonder: adhesive wafer-to-wafer bond, epoxy film lamination (Flow B11) or flip-chip / die attach
(Flow D), with a heated chuck, a bond force and, for wafer bonds and lamination, a vacuum chamber.

The field bounds span every mode; each mode's own window is checked by `_mode_window`, so a recipe
that fits the tool but not its mode is refused with a message naming the mode and the window.
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, model_validator

from drivers.judgement import Band, Limit, ResultCheck
from drivers.tool import Recipe, Result, Tool

BondMode = Literal["wafer_bond", "lamination", "die_attach"]

# Per-mode windows (low, high). wafer_bond: process-flows.md "bonder" row (150-250 C, 1-60 kN, 30-60 min
# typical). lamination: epoxy back-side film on a vacuum diaphragm/roller laminator, typically 80-180 C
# at lower force and short press times. die_attach: strip-level flip-chip (solder reflow, up to ~250 C
# for SAC) or adhesive attach (120-180 C), gang-bonded at a few kN, seconds to minutes.
MODE_WINDOWS: dict[str, dict[str, tuple[float, float]]] = {
    "wafer_bond": {"temp_c": (150, 250), "force_kn": (1, 60), "hold_s": (60, 7200)},
    "lamination": {"temp_c": (80, 180), "force_kn": (1, 10), "hold_s": (10, 1800)},
    "die_attach": {"temp_c": (100, 250), "force_kn": (1, 20), "hold_s": (5, 1800)},
}
MODE_UNITS = {"temp_c": "C", "force_kn": "kN", "hold_s": "s"}


class BonderRecipe(Recipe):
    mode: BondMode = Field(default="wafer_bond", description="wafer bond, film lamination or die attach")
    temp_c: float = Field(ge=80, le=250, description="chuck bond temperature, degC (window per mode)")
    force_kn: float = Field(ge=1, le=60, description="bond force, kN (window per mode)")
    hold_s: float = Field(ge=5, le=7200, description="time at temperature and force, s (window per mode)")
    vacuum_mbar: float = Field(default=0.01, gt=0, le=10, description="chamber vacuum; unused by die_attach")
    ramp_c_per_min: float = Field(default=20, ge=1, le=60, description="chuck heating ramp")

    @model_validator(mode="after")
    def _mode_window(self) -> Self:
        for name, (low, high) in MODE_WINDOWS[self.mode].items():
            value = float(getattr(self, name))
            if not low <= value <= high:
                unit = MODE_UNITS[name]
                raise ValueError(
                    f"{self.mode} needs {name} {low:g}-{high:g} {unit}, got {value:g} {unit}"
                )
        return self

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
    stack_actions = frozenset({"bond", "layer"})
    recipe_model = BonderRecipe
    result_model = BonderResult
    interlock_inputs = ("door_closed", "vacuum_ok", "cooling_water_ok", "emo_ok")
    process_values = ("chuck_temp_c", "applied_force_kn", "chamber_pressure_mbar")
    run_bands = (
        Band(name="chuck_temp_band", variable="chuck_temp_c", high=Limit(of="temp_c", offset=15)),
        Band(name="bond_force_band", variable="applied_force_kn", high=Limit(of="force_kn", factor=1.1)),
    )
    result_checks = (
        ResultCheck(name="bond_peak_temp", result="peak_temp_c", target=Limit(of="temp_c"),
                    below_pct=5, above_pct=5),
        ResultCheck(name="bond_peak_force", result="peak_force_kn", target=Limit(of="force_kn"),
                    below_pct=5, above_pct=5),
    )
