"""`check_flow`: expand a flow, simulate it on a fresh traveler with nominal values, apply the refusal
rules at every step and the claims to the finished stack - a flow is refused before any tool runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from sequencer.process.claims import ClaimCheck, check_claims
from sequencer.process.flow import Flow, Step, expand
from sequencer.process.rules import Violation, after_step, before_step
from sequencer.process.traveler import Stack, apply_step, new_stack

__all__ = ["CheckReport", "Violation", "check_flow"]


@dataclass
class CheckReport:
    flow: Flow
    wafers: int
    steps: list[Step]
    violations: list[Violation]
    claims: list[ClaimCheck]
    stack: Stack
    ok: bool = field(default=False)


def check_flow(flow: Flow, wafers: int | None = None, steps: list[Step] | None = None) -> CheckReport:
    """Dry-run `flow` for `wafers` (default: the flow's) and report every rule and claim it breaks.

    Raises ConfigError when the wafer count is outside the flow's range. A step that breaks a rule is
    still applied (with nominal values) so that later steps and the claims are judged too.
    """
    steps = steps if steps is not None else expand(flow, wafers)  # a run passes the ones it will run
    n = steps[0].stack_size if steps else (wafers or flow.wafers.default)
    stack = new_stack(flow, n, f"check-{flow.name}-{n}")
    at = datetime.now(UTC).isoformat(timespec="seconds")
    violations: list[Violation] = []
    for step in steps:
        violations += before_step(stack, step)
        apply_step(stack, step, None, tool=step.kind or "-", at=at)
        violations += after_step(stack, step)
    claims = check_claims(stack)
    violations += [Violation("stack", f"claim-{c.claim}", c.detail) for c in claims if not c.ok]
    return CheckReport(flow, n, steps, violations, claims, stack, ok=not violations)
