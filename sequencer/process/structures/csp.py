"""A chip-size package with two resin layers around solder terminals (seed 002, Flow C): one wafer,
the stack's rules (its terminal and resin rules are among them), seed 002's own claims."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from sequencer.process.structures.base import Structure
from sequencer.process.structures.limits import Limits, Range, load_limits

if TYPE_CHECKING:
    from sequencer.process.claim_types import ClaimCheck
    from sequencer.process.stack_model import Stack


class CspLimits(Limits):
    resin_total_um: Range = Field(description="claim 2: resin layers 1 + 2 together")


def limits() -> CspLimits:
    return load_limits("csp", CspLimits)


class ChipSizePackage(Structure):
    name = "csp"
    single_wafer = True

    def claims(self, stack: Stack) -> list[ClaimCheck]:
        from sequencer.process.claims import csp_claims

        return csp_claims(stack)


STRUCTURE = ChipSizePackage()
