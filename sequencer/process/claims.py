"""Claims 1-7 of process-flows.md ("What a finished stack must satisfy"), checked on a finished traveler.

A flow with `structure: csp` (seed 002, Flow C: one wafer, no bonds) is judged by seed 002's own claims
1-3 and 5 instead (`csp_claims`): the stack claims 1-7 do not describe it. Likewise `flipchip` (seed 003,
Flow D: flipchip_claims.py) and `double_sided` (seed 004, Flow E: double_sided.py).

The check reads only the traveler, so it judges what was actually built (measured thicknesses at run
time), not what the flow intended; the same layer rules as the step-by-step check apply (rules.py).
"""

from __future__ import annotations

from drivers.kinds.ball_mounter import ALLOYS
from sequencer.process.claim_types import ClaimCheck, claim_result
from sequencer.process.rules import copper, layer_problems
from sequencer.process.rules_csp import csp_problems
from sequencer.process.stack_model import Stack
from sequencer.process.structures import named

__all__ = ["ClaimCheck", "check_claims", "csp_claims"]

DEVICE_ROLES = ("pad", "rewiring", "via_electrode", "post")  # a device pattern on the front


_result = claim_result


def _claim1(stack: Stack) -> ClaimCheck:
    problems = [] if stack.size >= 2 else [f"{stack.size} wafer: a stack needs 2 or more"]
    problems += [f"wafer {w.index} is not in the stack" for w in stack.wafers if not w.in_stack]
    for k in range(2, stack.size + 1):
        bonds = [b for b in stack.bonds if b.lower == k - 1 and b.upper == k]
        if len(bonds) != 1:
            problems.append(f"wafer {k} is bonded onto wafer {k - 1} {len(bonds)} times")
        elif bonds[0].through_role != "insulating":
            problems.append(f"bond {bonds[0].step} goes through {bonds[0].through or 'nothing'}, "
                            "not an insulating layer")
    problems += [f"wafer {w.index} has no device pattern (pad, re-wiring, via, post) on its front"
                 for w in stack.wafers if not [la for la in w.present("front") if la.role in DEVICE_ROLES]]
    title = "2+ devices bonded through an insulating layer, each with a device pattern on its front"
    return _result(1, title, problems, f"{stack.size} wafers, {len(stack.bonds)} bonds through insulating "
                   "layers")


def _claim2(stack: Stack) -> ClaimCheck:
    problems = [f"bond {b.step}: lower {b.lower_face} to upper {b.upper_face}" for b in stack.bonds
                if (b.lower_face, b.upper_face) != ("front", "back")]
    return _result(2, "every bond: lower FRONT faces upper BACK", problems,
                   f"{len(stack.bonds)} bonds front-to-back")


def _layer_claim(stack: Stack, claim: int, title: str, role: str, rule: str, optional: bool) -> ClaimCheck:
    found = [(w, face, la) for w in stack.wafers for face in ("front", "back")
             for la in w.present(face, role)]
    if not found:
        problems = [] if optional else [f"no {role} layer"]
        return _result(claim, title, problems, f"no {role} layer (optional)")
    problems = [msg for w, face, la in found
                for name, msg in layer_problems(stack, w, face, la) if name == rule]
    where = ", ".join(f"{la.material} {la.thickness_um:g} um on wafer {w.index} {face} ({la.step})"
                      for w, face, la in found)
    return _result(claim, title, problems, where)


def _claim6(stack: Stack) -> ClaimCheck:
    title = "re-wiring and through-electrode formed in ONE plating step, of Cu or a Cu alloy"
    holed = [w for w in stack.wafers if w.holes]
    if not holed:
        return _result(6, title, [], "no through-electrodes in this stack (Fig. 4 structure): not applicable")
    problems = [f"wafer {w.index} has no through-electrode to the wafer below"
                for w in stack.wafers[1:] if not w.holes]
    for w in holed:
        for h in w.holes:
            if h.filled_by is None:
                problems.append(f"wafer {w.index}: through-holes of {h.step} have no via electrode")
                continue
            made = [la for la in w.front if la.step == h.filled_by]
            roles = {la.role for la in made}
            if not {"rewiring", "via_electrode"} <= roles:
                problems.append(f"wafer {w.index}: {h.filled_by} did not form re-wiring and via together")
            problems += [f"wafer {w.index}: {la.role} of {la.material} ({la.step})"
                         for la in made if not copper(la.material)]
    return _result(6, title, problems, ", ".join(
        f"wafer {w.index}: {h.filled_by}" for w in holed for h in w.holes))


def _claim7(stack: Stack) -> ClaimCheck:
    title = "dicing only after the required number of wafers is bonded"
    if not stack.diced or stack.diced_seq is None:
        return _result(7, title, ["the stack is not diced"], "")
    late = [b.step for b in stack.bonds if b.seq > stack.diced_seq]
    problems = [f"bond {s} after dicing" for s in late]
    if len(stack.bonds) - len(late) < stack.size - 1:
        problems.append(f"diced ({stack.diced_by}) with {len(stack.bonds) - len(late)} of "
                        f"{stack.size - 1} bonds made")
    return _result(7, title, problems, f"diced by {stack.diced_by} after all {len(stack.bonds)} bonds")


def csp_claims(stack: Stack) -> list[ClaimCheck]:
    """Seed 002 claims 1-3 and 5 on every wafer's front (a CSP: terminals through two resin layers)."""
    structure: list[str] = []
    rules: dict[str, list[str]] = {"resin-layers-total": [], "first-resin-below-terminal": []}
    total = rules["resin-layers-total"]
    melting: list[str] = []
    for w in stack.wafers:
        roles = {la.role for la in w.present("front")}
        missing = [r for r in ("first_resin", "second_resin", "first_terminal", "second_terminal")
                   if r not in roles]
        structure += [f"wafer {w.index}: no {r}" for r in missing]
        structure += [f"wafer {w.index}: {la.material} {la.role} still covers the first terminals"
                      for la in w.present("front") if la.covers == "first_terminal"]
        for name, msg in csp_problems(w, "front"):
            rules[name].append(msg)
        for first in w.present("front", "first_terminal"):
            for second in w.present("front", "second_terminal"):
                a, b = ALLOYS.get(first.material), ALLOYS.get(second.material)
                if a is None or b is None or a.solidus_c <= b.liquidus_c:
                    melting.append(f"wafer {w.index}: first {first.material} does not melt above second "
                                   f"{second.material}")
    return [
        _result(1, "first terminals on the re-wiring through resin layer 1, buried in resin layer 2, "
                "exposed, second terminals on them", structure, f"{stack.size} wafer(s) complete"),
        _result(2, "resin layers 1 + 2 total 50-500 um", [m for m in total if "outside" in m],
                "within 50-500 um"),
        _result(3, "first terminal at least as high as resin layers 1 + 2; layer 1 thinner than it",
                [m for m in total if "outside" not in m] + rules["first-resin-below-terminal"],
                "terminal height covers the resin"),
        _result(5, "first terminal's alloy melts higher than the second's", melting, "first alloy's solidus "
                "above the second alloy's liquidus"),
    ]


def check_claims(stack: Stack) -> list[ClaimCheck]:
    """The claims of the traveler's structure (sequencer/process/structures/)."""
    return named(stack.structure).claims(stack)


def stack_claims(stack: Stack) -> list[ClaimCheck]:
    """Claims 1-7 in order; optional features (heat-radiation layer, resin seal) pass when absent."""
    return [
        _claim1(stack),
        _claim2(stack),
        _layer_claim(stack, 3, "heat-radiation layer only on the lowermost BACK, Cu/Al/alloy, thin film, "
                     "before dicing", "heat_radiation", "heat-radiation-layer", optional=True),
        _layer_claim(stack, 4, "insulating layer of polyimide or epoxy (10-75 um)", "insulating",
                     "insulating-layer", optional=False),
        _layer_claim(stack, 5, "resin-sealing layer only on the uppermost FRONT, 50-90 um, before dicing",
                     "resin_seal", "resin-sealing-layer", optional=True),
        _claim6(stack),
        _claim7(stack),
    ]
