"""A double-sided wafer-level package (seed 004, Flow E): one wafer, terminals on both faces, order and
exposure rules judged before each step (sequencer/process/double_sided.py), seed 004's claims."""

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


class DoubleSidedLimits(Limits):
    flush_tol_um: Positive = Field(description="a polished post is flush with the seal within this")


def limits() -> DoubleSidedLimits:
    return load_limits("double_sided", DoubleSidedLimits)


class DoubleSidedWafer(Structure):
    name = "double_sided"
    single_wafer = True

    def pre_rules(self) -> tuple[Rule, ...]:
        from sequencer.process import double_sided
        from sequencer.process.rules import COMMON

        return (*COMMON, double_sided.before)

    def extra_permissives(self, stack: Stack, step: Step) -> Found:
        from sequencer.process import double_sided

        return double_sided.terminal_checks(stack, step)

    def after(self, stack: Stack, step: Step) -> Found:
        return []  # Flow E's rules are order and exposure rules, judged before each step

    def claims(self, stack: Stack) -> list[ClaimCheck]:
        from sequencer.process import double_sided

        return double_sided.claims(stack)


STRUCTURE = DoubleSidedWafer()
