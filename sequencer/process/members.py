"""What a flow's stack is made of: wafers (`substrate`, a count), or named parts and their materials.

Flows A-C and E process wafers only (`substrate`, `wafers`). Flow D (seed 003) assembles a package at strip
level
from two chip CARRIERS (an organic substrate or a TAB tape) and two CHIPS: each flow names its members
bottom to top in the finished package (`members`), the strip they ride on (`strip`), and the material
grades its layers use (`materials`): seed 003 claims properties a recipe's material family cannot say
(an insulating adhesive of high elasticity, a low-viscosity low-hygroscopy resin), so the flow records
the grade's data sheet figures and the rules judge the figures, not a name.
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

WAFER_RANGE = (2, 8)  # seed 001: "generally about 2 to 8 and is preferably 4"
Form = Literal["wafer", "chip", "carrier"]
CarrierType = Literal["substrate", "tab_tape"]  # seed 003 claims 3/8 and 4/9
MEMBER_NAME = r"^[a-z][a-z0-9_]*$"
RESERVED = ("lowermost", "uppermost", "current", "below")  # the wafer references of stack flows


class Member(BaseModel):
    """One part of the package, bottom to top: a carrier's FRONT is its chip side, its BACK the outer
    (ball) face; a chip's FRONT is its active (bumped) surface, its BACK the non-active one."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    name: str = Field(pattern=MEMBER_NAME)
    form: Form
    carrier: CarrierType | None = Field(default=None, description="carriers only: substrate or TAB tape")
    material: str
    thickness_um: float = Field(gt=0, le=2000)

    @model_validator(mode="after")
    def _carrier(self) -> Self:
        if self.name in RESERVED:
            raise ValueError(f"member name {self.name!r} is a wafer reference ({', '.join(RESERVED)})")
        if self.form == "carrier" and self.carrier is None:
            raise ValueError(f"member {self.name}: a carrier needs `carrier: substrate | tab_tape`")
        if self.form != "carrier" and self.carrier is not None:
            raise ValueError(f"member {self.name}: only a carrier has a carrier type")
        return self


class Strip(BaseModel):
    """The panel a strip-level flow processes: its size bounds recipe areas and cuts; `units` packages."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    length_mm: float = Field(ge=50, le=310)
    width_mm: float = Field(ge=10, le=310)
    units: int = Field(ge=1, le=10000)


class MaterialSpec(BaseModel):
    """A material grade's data-sheet figures; `family` is the recipe's material it is dispensed as."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    family: str
    insulating: bool
    modulus_gpa: float = Field(gt=0, le=500, description="elastic (tensile) modulus at 25 C")
    viscosity_pa_s: float | None = Field(default=None, gt=0, description="at the dispense temperature")
    water_absorption_pct: float | None = Field(default=None, ge=0, le=100,
                                               description="85 C / 85 % RH saturation, weight %")
    note: str = ""


class WaferCount(BaseModel):
    """Stack sizes a flow runs (2-8); csp / double_sided: one wafer, flipchip: its members (Flow._single)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    default: int = Field(default=4, ge=WAFER_RANGE[0], le=WAFER_RANGE[1])
    min: int = Field(default=WAFER_RANGE[0], ge=WAFER_RANGE[0], le=WAFER_RANGE[1])
    max: int = Field(default=WAFER_RANGE[1], ge=WAFER_RANGE[0], le=WAFER_RANGE[1])

    @model_validator(mode="after")
    def _order(self) -> Self:
        if not self.min <= self.default <= self.max:
            raise ValueError(f"default {self.default} outside min-max {self.min}-{self.max}")
        return self


class Substrate(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    material: str = "Si"
    thickness_um: float = Field(ge=50, le=725, description="seed 001: about 50-725 um")
    diameter_mm: Literal[200, 300]
