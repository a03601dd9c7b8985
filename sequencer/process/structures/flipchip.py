"""A stacked flip-chip package on chip carriers (seed 003, Flow D): named members on a strip, flip-chip
joints instead of wafer bonds, and seed 003's rules and claims (sequencer/process/flipchip*.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from sequencer.process.structures.base import Found, Structure
from sequencer.process.structures.limits import Limits, Positive, load_limits

if TYPE_CHECKING:
    from sequencer.process.claim_types import ClaimCheck
    from sequencer.process.flow import Step
    from sequencer.process.rules import Rule
    from sequencer.process.stack_model import Stack


class FlipchipLimits(Limits):
    adhesive_max_modulus_gpa: Positive = Field(description="claim 5: a high-elasticity adhesive")
    fill_max_viscosity_pa_s: Positive = Field(description="claim 6: a low-viscosity fill")
    fill_max_water_pct: Positive = Field(description="claim 6: a low-hygroscopicity fill")


def limits() -> FlipchipLimits:
    return load_limits("flipchip", FlipchipLimits)


class FlipChipOnCarriers(Structure):
    name = "flipchip"
    members = True

    def pre_rules(self) -> tuple[Rule, ...]:
        from sequencer.process import flipchip
        from sequencer.process.rules import COMMON

        return (*COMMON, flipchip.before)

    def bond_checks(self, stack: Stack, step: Step) -> Found:
        from sequencer.process import flipchip

        return flipchip.joint_checks(stack, step)

    def after(self, stack: Stack, step: Step) -> Found:
        from sequencer.process import flipchip

        return flipchip.after(stack, step)

    def claims(self, stack: Stack) -> list[ClaimCheck]:
        from sequencer.process.flipchip_claims import flipchip_claims

        return flipchip_claims(stack)


STRUCTURE = FlipChipOnCarriers()
