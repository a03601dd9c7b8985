"""Wafer permissives: may this step start on its wafer(s) as the traveler records them now?

Split from traveler.py. A refused permissive holds the run (engine) or refuses the flow (check) with a
named rule; each structure adds its own: a stack's wafer bonds (claim 1), a CSP's exposed terminals
(seed 002), Flow D's flip-chip and adhesive joints (flipchip.py), Flow E's sealed-and-opened faces
(double_sided.py).
"""

from __future__ import annotations

from sequencer.process import flipchip
from sequencer.process.effects import Face
from sequencer.process.flow import Step
from sequencer.process.stack_model import BLOCKED, Stack
from sequencer.process.structures import named

Found = list[tuple[str, str]]


def permissive_checks(stack: Stack, step: Step) -> Found:
    """(rule, reason) for every reason the step may not start on its wafer(s) now; empty if it may."""
    structure = named(stack.structure)
    out: Found = []
    if stack.diced:
        out.append(("after-dicing", f"the stack was diced by {stack.diced_by}: no wafer step may follow"))
    bad = [i for i in (*step.touches, step.onto or 1) if not 1 <= i <= stack.size]
    if bad:
        return [*out, ("wafer-index", f"wafer(s) {bad} not in a stack of {stack.size}")]
    for index in step.touches:
        state = stack.wafer(index).state
        if state in BLOCKED:
            out.append(("wafer-state", f"{stack.wafer(index).label} is {state.value}"))
    w, e = stack.wafer(step.wafer), step.effect
    if e.load is not None:
        if w.in_stack:
            out.append(("already-in-stack", f"{w.label} is already loaded"))
    elif e.bond is not None:
        out += structure.bond_checks(stack, step)
    elif step.before_bond:
        if w.in_stack:
            out.append(("already-in-stack", f"wafer {w.index} is bonded; {step.uid} runs before its bond"))
    else:
        out += [("not-in-stack", f"{stack.wafer(i).label} is not loaded or bonded into the stack yet")
                for i in step.touches if not stack.wafer(i).in_stack]
    if e.plate is not None:
        face = step.face_for(e.plate.face)
        if not w.present(face, "seed"):
            out.append(("plating-without-seed", f"no seed layer on the {face} of {w.label}"))
        if e.plate.rewiring_and_via and not [h for h in w.holes if h.opened_by and not h.filled_by]:
            out.append(("holes-not-opened", f"wafer {w.index}: no through-holes opened to the wiring below"))
        if e.plate.fills_holes and not [h for h in w.holes if h.lined_by and not h.filled_by]:
            out.append(("holes-not-lined", f"{w.label}: no lined, unfilled holes for the plating to fill"))
    if e.layer is not None and e.layer.role == "second_terminal":
        face = step.face_for(e.layer.face)
        skins = [la for la in w.present(face) if la.covers == "first_terminal"]
        if not w.present(face, "first_terminal") or skins:
            why = f"{skins[0].material} {skins[0].role} still covers them" if skins else "there are none"
            out.append(("terminals-exposed", f"wafer {w.index}: second terminals need exposed first "
                                             f"terminals on the {face} ({why})"))
    out += structure.extra_permissives(stack, step)
    if e.reflow is not None:
        out += flipchip.reflow_checks(stack, step)
    if e.open_holes is not None and not w.holes:
        out.append(("holes-not-opened", f"wafer {w.index} has no through-holes to open"))
    wanted: list[tuple[Face | None, list[str]]] = [(e.update.face, [e.update.role])] if e.update else []
    wanted += [(e.remove.face, e.remove.roles())] if e.remove else []
    wanted += [(e.open_layer.face, [e.open_layer.role])] if e.open_layer else []
    for face, roles in ((step.face_for(f), r) for f, r in wanted):
        if not [la for la in w.present(face) if la.role in roles]:
            out.append(("missing-layer", f"no {'/'.join(roles)} layer on the {face} of {w.label}"))
    return out


def wafer_bond_checks(stack: Stack, step: Step) -> Found:
    out: Found = []
    upper, lower = stack.wafer(step.wafer), stack.wafer(step.wafer - 1)
    assert step.effect.bond is not None
    if upper.in_stack:
        out.append(("already-in-stack", f"wafer {upper.index} is already in the stack"))
    if not lower.in_stack:
        out.append(("not-in-stack", f"wafer {lower.index} is not in the stack: nothing to bond onto"))
    if any(b.lower == lower.index for b in stack.bonds):
        out.append(("already-in-stack", f"wafer {lower.index} already carries a wafer"))
    if upper.diameter_mm != lower.diameter_mm:
        out.append(("bond-diameter", f"wafer {upper.index} is {upper.diameter_mm} mm, wafer {lower.index} "
                                     f"{lower.diameter_mm} mm: bonded wafers must have the same diameter"))
    face = step.effect.bond.lower_face
    top = lower.top(face)
    if top is None or top.role != "insulating":
        what = f"its top layer is {top.material} {top.role}" if top else "it is bare"
        out.append(("bond-insulating-layer", f"no insulating layer on the {face} of wafer {lower.index} "
                                             f"({what}): wafers bond through an insulating layer (claim 1)"))
    return out


def wafer_permissive(stack: Stack, step: Step) -> str | None:
    """None if the step may start on its wafer(s), else the first reason it may not."""
    checks = permissive_checks(stack, step)
    return checks[0][1] if checks else None
