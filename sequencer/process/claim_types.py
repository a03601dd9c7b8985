"""The verdict on one claim of a finished stack; shared by claims.py and the per-structure modules
(flipchip_claims.py, double_sided.py) so that they need not import each other."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ClaimCheck:
    claim: int
    title: str
    ok: bool
    detail: str


def claim_result(claim: int, title: str, problems: list[str], fine: str) -> ClaimCheck:
    """ok when there are no problems; the detail lists them, else says what was found."""
    return ClaimCheck(claim, title, not problems, "; ".join(problems) if problems else fine)
