"""Seed 002's (Flow C, `structure: csp`) rules on a traveler: the two resin layers against the first
terminal's height, and a second reflow that must not remelt the first terminals. Split from rules.py."""

from __future__ import annotations

from drivers.kinds.ball_mounter import ALLOYS, BallMounterRecipe
from sequencer.process.effects import CSP_RESINS, CSP_TERMINALS
from sequencer.process.flow import Step
from sequencer.process.stack_model import Stack, Wafer
from sequencer.process.structures.csp import limits as csp_limits

Found = list[tuple[str, str]]
CSP_RESIN_TOTAL_UM = csp_limits().resin_total_um  # claim 2 (configs/structures/csp.yaml)


def second_reflow(stack: Stack, step: Step) -> Found:
    """Seed 002 claim 5: a reflow after the first terminals exist must not remelt them. Strict reading:
    the peak stays below the first alloy's SOLIDUS (a pasty terminal is already remelting)."""
    r, e = step.recipe, step.effect
    if not isinstance(r, BallMounterRecipe) or r.operation == "mount":
        return []
    if CSP_TERMINALS[0] in {e.layer.role if e.layer else None, e.update.role if e.update else None}:
        return []  # the reflow that forms the first terminals themselves
    out: Found = []
    for face in ("front", "back"):
        for la in stack.wafer(step.wafer).present(face, CSP_TERMINALS[0]):
            peak, alloy = r.peak_temp_c, ALLOYS.get(la.material)
            second = r.alloy
            if alloy is None:
                out.append(("second-reflow-remelts-first", f"first terminal alloy {la.material} is not in "
                            f"the alloy table {sorted(ALLOYS)}: its melting point is unknown"))
            elif peak >= alloy.solidus_c:
                out.append(("second-reflow-remelts-first", f"second reflow of {second} peaks at "
                            f"{peak:g} C, not below the first terminal's {la.material} solidus "
                            f"{alloy.solidus_c:g} C: the first terminals would remelt (seed 002 claim 5)"))
    return out



def csp_problems(w: Wafer, face: str) -> Found:
    """Seed 002 claims 2-3 and [0016] on one face: the resin layers against the first terminal's height."""
    out: Found = []
    resins = {role: w.present(face, role) for role in CSP_RESINS}
    terminals = w.present(face, CSP_TERMINALS[0])
    height = min((la.thickness_um for la in terminals), default=None)
    where = f"wafer {w.index} {face}"
    for la in resins["first_resin"]:
        if height is not None and la.thickness_um >= height:
            out.append(("first-resin-below-terminal", f"{where}: first resin layer {la.material} "
                        f"{la.thickness_um:g} um is not thinner than the {height:g} um first terminal"))
    if resins["first_resin"] and resins["second_resin"]:
        total = sum(la.thickness_um for role in CSP_RESINS for la in resins[role])
        lo, hi = CSP_RESIN_TOTAL_UM
        if not lo <= total <= hi:
            out.append(("resin-layers-total", f"{where}: resin layers 1 + 2 total {total:g} um, outside "
                                              f"{lo:g}-{hi:g} um (seed 002 claim 2)"))
        if height is not None and total > height:
            out.append(("resin-layers-total", f"{where}: resin layers 1 + 2 total {total:g} um, more than "
                                              f"the {height:g} um first terminal height (seed 002 claim 3)"))
    return out
