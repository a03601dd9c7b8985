"""The traveler: a durable record of one wafer stack - every layer on every face, holes, bonds, E90 states.

Only completed steps write it (`apply_step`); interlocks and the claims check read it. Removed layers
(stripped resist, etched seed) stay in the record with the step that removed them, so the traveler is
also the stack's history. E90 substrate states: a wafer is IN_PROCESS from its first completed step and
PROCESSED after the last step of the flow that touches it; ABORTED, STOPPED and UNKNOWN are set by run
control (`set_state`) and never overwritten by `apply_step` - an operator decides what happens next.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from drivers.errors import ConfigError
from sequencer.effects import CSP_RESINS, CSP_TERMINALS, Face, resolve_text, resolve_um
from sequencer.flow import Flow, Step


class E90State(StrEnum):
    """SEMI E90 substrate processing states (the subset a wafer in a stack can be in)."""

    NEEDS_PROCESSING = "NEEDS_PROCESSING"
    IN_PROCESS = "IN_PROCESS"
    PROCESSED = "PROCESSED"
    ABORTED = "ABORTED"
    STOPPED = "STOPPED"
    UNKNOWN = "UNKNOWN"


BLOCKED = (E90State.UNKNOWN, E90State.ABORTED, E90State.STOPPED, E90State.PROCESSED)


class Record(BaseModel):
    """Who made it: step uid, tool name, ISO time, history index (orders it against bonds and dicing)."""

    step: str
    tool: str
    at: str
    seq: int


class Layer(Record):
    material: str
    role: str
    thickness_um: float
    kind: str | None = None
    measured: bool = False  # thickness from the tool's result (False: nominal)
    cured: bool = False
    patterned: bool = False
    lines_holes: bool = False
    covers: str | None = None  # role of the features its thin skin still covers (C5, until C6 cuts it)
    last_step: str = ""  # uid of the last step that formed or changed it
    removed_by: str | None = None
    removed_at: str | None = None

    @property
    def present(self) -> bool:
        return self.removed_by is None


class Holes(Record):
    """The through-holes of one wafer (one etch), from etched to via-filled."""

    depth_um: float
    measured: bool = False
    lined_by: str | None = None  # polymer on the side walls (A9)
    opened_by: str | None = None  # insulating layer opened at the bottom (A10)
    opened_depth_um: float | None = None
    filled_by: str | None = None  # via electrode plated (A12)


class Wafer(BaseModel):
    index: int  # 1 = lowermost
    material: str
    thickness_um: float
    diameter_mm: int
    state: E90State = E90State.NEEDS_PROCESSING
    in_stack: bool = False  # loaded as the base, or bonded onto the wafer below
    front: list[Layer] = Field(default_factory=list)
    back: list[Layer] = Field(default_factory=list)
    holes: list[Holes] = Field(default_factory=list)

    def layers(self, face: str) -> list[Layer]:
        return self.front if face == "front" else self.back

    def present(self, face: str, role: str | None = None) -> list[Layer]:
        return [la for la in self.layers(face) if la.present and (role is None or la.role == role)]

    def top(self, face: str) -> Layer | None:
        here = self.present(face)
        return here[-1] if here else None


class Bond(Record):
    lower: int
    upper: int
    lower_face: str
    upper_face: str
    through: str | None  # material of the lower face's top layer the bond goes through
    through_role: str | None = None
    through_um: float | None = None


class HistoryEntry(Record):
    spec_id: str
    kind: str | None
    wafers: list[int]  # every wafer the step touched
    result: dict[str, Any] | None = None  # what the tool measured; None in check mode


class Stack(BaseModel):
    stack_id: str
    flow: str
    structure: str = "stack"  # the flow's: which finished-structure claims apply (claims.py)
    wafers: list[Wafer]
    bonds: list[Bond] = Field(default_factory=list)
    diced: bool = False
    diced_by: str | None = None
    diced_seq: int | None = None
    history: list[HistoryEntry] = Field(default_factory=list)

    def wafer(self, index: int) -> Wafer:
        return self.wafers[index - 1]

    @property
    def size(self) -> int:
        return len(self.wafers)

    def completed(self) -> set[str]:
        """uids of the steps applied so far (what a resumed run must not redo)."""
        return {h.step for h in self.history}


def new_stack(flow: Flow, wafers: int, stack_id: str) -> Stack:
    lo, hi = flow.wafers.min, flow.wafers.max
    if not lo <= wafers <= hi:
        raise ConfigError(f"flow {flow.name}: {wafers} wafers is outside the flow's range {lo}-{hi}")
    sub = flow.substrate
    return Stack(stack_id=stack_id, flow=flow.name, structure=flow.structure, wafers=[
        Wafer(index=i, material=sub.material, thickness_um=sub.thickness_um, diameter_mm=sub.diameter_mm)
        for i in range(1, wafers + 1)
    ])


def set_state(stack: Stack, wafer: int | None, state: E90State) -> None:
    """Run control's hook: set one wafer's (or, with None, every wafer's) E90 state."""
    for w in stack.wafers if wafer is None else [stack.wafer(wafer)]:
        w.state = state


def apply_step(stack: Stack, step: Step, result: Mapping[str, Any] | None, *, tool: str, at: str) -> None:
    """Record a COMPLETED step: its effect with the tool's measured values (or nominal ones when result
    is None, in check mode), a history entry, and the touched wafers' E90 states."""
    if step.uid in stack.completed():
        raise ValueError(f"step {step.uid} is already on traveler {stack.stack_id}")
    seq = len(stack.history)
    w = stack.wafer(step.wafer)
    e, r = step.effect, step.recipe

    def layer(face: str, material: str, role: str, um: float, measured: bool, **extra: Any) -> None:
        w.layers(face).append(Layer(material=material, role=role, thickness_um=round(um, 4), step=step.uid,
                                    tool=tool, kind=step.kind, at=at, seq=seq, measured=measured,
                                    last_step=step.uid, **extra))

    if e.load is not None:
        w.material, w.thickness_um = e.load.material or w.material, e.load.thickness_um or w.thickness_um
        w.diameter_mm = e.load.diameter_mm or w.diameter_mm
        for pre in e.load.layers:
            layer(pre.face, pre.material, pre.role, pre.thickness_um, False, patterned=True)
        w.in_stack = True
    if e.thin is not None:
        w.thickness_um = round(resolve_um(e.thin.to, e.thin.nominal, r, result)[0], 4)
    if e.remove is not None:
        for la in w.present(step.face_for(e.remove.face)):
            if la.role in e.remove.roles():
                la.removed_by, la.removed_at = step.uid, at
    if e.update is not None:
        found = w.present(step.face_for(e.update.face), e.update.role)
        if found:
            la = found[-1]
            if e.update.thickness_um is not None:
                la.thickness_um, la.measured = resolve_um(e.update.thickness_um, e.update.nominal, r, result)
            la.cured = la.cured if e.update.cured is None else e.update.cured
            la.patterned = la.patterned if e.update.patterned is None else e.update.patterned
            la.last_step = step.uid
    if e.through_holes is not None:
        depth, measured = resolve_um(e.through_holes.depth_um, e.through_holes.nominal, r, result)
        w.holes.append(Holes(depth_um=depth, step=step.uid, tool=tool, at=at, seq=seq, measured=measured))
    if e.open_holes is not None:
        depth, _ = resolve_um(e.open_holes.depth_um, e.open_holes.nominal, r, result)
        for h in w.holes:
            if h.opened_by is None:
                h.opened_by, h.opened_depth_um = step.uid, depth
    if e.layer is not None:
        um, measured = resolve_um(e.layer.thickness_um, e.layer.nominal, r, result)
        layer(step.face_for(e.layer.face), resolve_text(e.layer.material, r), e.layer.role, um, measured,
              lines_holes=e.layer.lines_holes, covers=e.layer.covers)
        for h in w.holes if e.layer.lines_holes else []:
            h.lined_by = h.lined_by or step.uid
    if e.plate is not None:
        face = step.face_for(e.plate.face)
        metal = resolve_text("recipe.metal", r)
        um, measured = resolve_um(e.plate.thickness_um, e.plate.nominal, r, result)
        if e.plate.rewiring_and_via:  # the via electrodes fill the holes under the re-wiring
            for h in w.holes:
                if h.opened_by is not None and h.filled_by is None:
                    h.filled_by = step.uid
                    layer(face, metal, "via_electrode", h.depth_um, measured)
        layer(face, metal, e.plate.role, um, measured)
    if e.planarize is not None:
        _planarize(w, step, resolve_um(e.planarize.to, e.planarize.nominal, r, result))
    if e.bond is not None:
        lower = stack.wafer(step.wafer - 1)
        through = lower.top(e.bond.lower_face)
        stack.bonds.append(Bond(
            lower=lower.index, upper=w.index, lower_face=e.bond.lower_face, upper_face=e.bond.upper_face,
            through=through.material if through else None, through_role=through.role if through else None,
            through_um=through.thickness_um if through else None, step=step.uid, tool=tool, at=at, seq=seq))
        w.in_stack = True
    if e.dice is not None:
        stack.diced, stack.diced_by, stack.diced_seq = True, step.uid, seq
    stack.history.append(HistoryEntry(
        seq=seq, step=step.uid, spec_id=step.spec_id, kind=step.kind, tool=tool, at=at,
        wafers=list(step.touches), result=dict(result) if result is not None else None))
    for index in step.touches:
        touched = stack.wafer(index)
        if touched.state in (E90State.NEEDS_PROCESSING, E90State.IN_PROCESS):
            done = index in step.final_for
            touched.state = E90State.PROCESSED if done else E90State.IN_PROCESS


def _planarize(w: Wafer, step: Step, to: tuple[float, bool]) -> None:
    """Cut a face flat at `to` um above the terminal sites: terminals down to it, the resin stack too."""
    assert step.effect.planarize is not None
    height, measured = to
    face, expose = step.face_for(step.effect.planarize.face), step.effect.planarize.expose
    reached = any(la.thickness_um >= height for la in w.present(face, expose)) if expose else False
    base = 0.0
    for la in w.present(face):
        if la.role in CSP_TERMINALS:
            left = min(la.thickness_um, height)
        elif la.role in CSP_RESINS:
            left = max(0.0, min(la.thickness_um, height - base))
            base += left
        else:
            continue
        if left < la.thickness_um:
            la.thickness_um, la.measured, la.last_step = round(left, 4), measured, step.uid
        if reached and la.covers == expose:
            la.covers, la.last_step = None, step.uid


def permissive_checks(stack: Stack, step: Step) -> list[tuple[str, str]]:
    """(rule, reason) for every reason the step may not start on its wafer(s) now; empty if it may."""
    out: list[tuple[str, str]] = []
    if stack.diced:
        out.append(("after-dicing", f"the stack was diced by {stack.diced_by}: no wafer step may follow"))
    bad = [i for i in step.touches if not 1 <= i <= stack.size]
    if bad:
        return [*out, ("wafer-index", f"wafer(s) {bad} not in a stack of {stack.size}")]
    for index in step.touches:
        state = stack.wafer(index).state
        if state in BLOCKED:
            out.append(("wafer-state", f"wafer {index} is {state.value}"))
    w, e = stack.wafer(step.wafer), step.effect
    if e.load is not None:
        if w.in_stack:
            out.append(("already-in-stack", f"wafer {w.index} is already loaded"))
    elif e.bond is not None:
        out += _bond_checks(stack, step)
    elif step.before_bond:
        if w.in_stack:
            out.append(("already-in-stack", f"wafer {w.index} is bonded; {step.uid} runs before its bond"))
    else:
        out += [("not-in-stack", f"wafer {i} is not loaded or bonded into the stack yet")
                for i in step.touches if not stack.wafer(i).in_stack]
    if e.plate is not None:
        face = step.face_for(e.plate.face)
        if not w.present(face, "seed"):
            out.append(("plating-without-seed", f"no seed layer on the {face} of wafer {w.index}"))
        if e.plate.rewiring_and_via and not [h for h in w.holes if h.opened_by and not h.filled_by]:
            out.append(("holes-not-opened", f"wafer {w.index}: no through-holes opened to the wiring below"))
    if e.layer is not None and e.layer.role == "second_terminal":
        face = step.face_for(e.layer.face)
        skins = [la for la in w.present(face) if la.covers == "first_terminal"]
        if not w.present(face, "first_terminal") or skins:
            why = f"{skins[0].material} {skins[0].role} still covers them" if skins else "there are none"
            out.append(("terminals-exposed", f"wafer {w.index}: second terminals need exposed first "
                                             f"terminals on the {face} ({why})"))
    if e.open_holes is not None and not w.holes:
        out.append(("holes-not-opened", f"wafer {w.index} has no through-holes to open"))
    wanted: list[tuple[Face | None, list[str]]] = [(e.update.face, [e.update.role])] if e.update else []
    wanted += [(e.remove.face, e.remove.roles())] if e.remove else []
    for face, roles in ((step.face_for(f), r) for f, r in wanted):
        if not [la for la in w.present(face) if la.role in roles]:
            out.append(("missing-layer", f"no {'/'.join(roles)} layer on the {face} of wafer {w.index}"))
    return out


def _bond_checks(stack: Stack, step: Step) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
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
