"""What a package structure decides, with the stacked-wafer structure's answers as the defaults
(seeds 000/001): a structure overrides only where its seed differs."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from sequencer.process.claim_types import ClaimCheck
    from sequencer.process.flow import Step
    from sequencer.process.rules import Rule
    from sequencer.process.stack_model import Stack

Found = list[tuple[str, str]]  # (rule, message)


class Structure:
    name: ClassVar[str]
    members: ClassVar[bool] = False  # the flow names its parts (`members` on a `strip`), not wafers
    single_wafer: ClassVar[bool] = False  # exactly one wafer, whatever the flow's default

    def pre_rules(self) -> tuple[Rule, ...]:
        """Rules judged before each step starts, beside the permissives."""
        from sequencer.process.rules import PRE_RULES

        return PRE_RULES

    def bond_checks(self, stack: Stack, step: Step) -> Found:
        """The permissive of a bond step."""
        from sequencer.process.permissives import wafer_bond_checks

        return wafer_bond_checks(stack, step)

    def extra_permissives(self, stack: Stack, step: Step) -> Found:
        """Permissives only this structure has."""
        return []

    def after(self, stack: Stack, step: Step) -> Found:
        """Problems in the layers the step formed or changed, as the traveler recorded them."""
        from sequencer.process.rules import layer_rules_after

        return layer_rules_after(stack, step)

    def claims(self, stack: Stack) -> list[ClaimCheck]:
        """The seed's claims on a finished traveler."""
        from sequencer.process.claims import stack_claims

        return stack_claims(stack)
