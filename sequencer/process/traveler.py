"""The traveler: a durable record of one wafer stack - every layer on every face, holes, bonds, E90 states.

Only completed steps write it (`apply_step`); interlocks and the claims check read it. Removed layers
(stripped resist, etched seed) stay in the record with the step that removed them, so the traveler is
also the stack's history. E90 substrate states: a wafer is IN_PROCESS from its first completed step and
PROCESSED after the last step of the flow that touches it; ABORTED, STOPPED and UNKNOWN are set by run
control (`set_state`) and never overwritten by `apply_step` - an operator decides what happens next.
The records live in stack_model.py and the permissives in permissives.py; both are re-exported here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from drivers.errors import ConfigError
from sequencer.process.effects import PLANAR_FEATURES, PLANAR_RESINS, resolve_text, resolve_um
from sequencer.process.flow import Flow, Step
from sequencer.process.identity import ByIdentity
from sequencer.process.permissives import permissive_checks, wafer_permissive
from sequencer.process.stack_model import (
    BLOCKED,
    Bond,
    E90State,
    HistoryEntry,
    Holes,
    Layer,
    Record,
    Stack,
    Trace,
    Wafer,
)

__all__ = [
    "BLOCKED", "Bond", "E90State", "HistoryEntry", "Holes", "Layer", "Record", "Stack", "Trace", "Wafer",
    "apply_step", "new_stack", "permissive_checks", "set_state", "wafer_permissive",
]


def new_stack(flow: Flow, wafers: int, stack_id: str) -> Stack:
    lo, hi = flow.wafers.min, flow.wafers.max
    if not lo <= wafers <= hi:
        raise ConfigError(f"flow {flow.name}: {wafers} wafers is outside the flow's range {lo}-{hi}")
    materials = {name: spec.model_dump() for name, spec in flow.materials.items()}
    if flow.members is not None and flow.strip is not None:
        length, width = round(flow.strip.length_mm), flow.strip.width_mm
        parts = [Wafer(index=i, name=m.name, form=m.form, carrier_type=m.carrier, material=m.material,
                       thickness_um=m.thickness_um, diameter_mm=length, width_mm=width)
                 for i, m in enumerate(flow.members, start=1)]
        return Stack(stack_id=stack_id, flow=flow.name, structure=flow.structure, materials=materials,
                     wafers=parts)
    sub = flow.substrate
    assert sub is not None  # Flow._parts: a wafer flow has a substrate
    return Stack(stack_id=stack_id, flow=flow.name, structure=flow.structure, materials=materials, wafers=[
        Wafer(index=i, material=sub.material, thickness_um=sub.thickness_um, diameter_mm=sub.diameter_mm)
        for i in range(1, wafers + 1)
    ])


def set_state(stack: Stack, wafer: int | None, state: E90State) -> None:
    """Run control's hook: set one wafer's (or, with None, every wafer's) E90 state."""
    for w in stack.wafers if wafer is None else [stack.wafer(wafer)]:
        w.state = state


# step uids on each live traveler, kept beside it: the duplicate check then touches one set instead of
# every history entry - on a VM each object first touched after an idle wait costs a cache miss
_APPLIED: ByIdentity[set[str]] = ByIdentity()


def _applied(stack: Stack) -> set[str]:
    uids = _APPLIED.get(stack)
    if uids is not None and len(uids) == len(stack.history):
        return uids
    return _APPLIED.put(stack, {h.step for h in stack.history})  # new, loaded, or written directly


def apply_step(stack: Stack, step: Step, result: Mapping[str, Any] | None, *, tool: str, at: str) -> None:
    """Record a COMPLETED step: its effect with the tool's measured values (or nominal ones when result
    is None, in check mode), a history entry, and the touched wafers' E90 states."""
    applied = _applied(stack)
    if step.uid in applied:
        raise ValueError(f"step {step.uid} is already on traveler {stack.stack_id}")
    seq = len(stack.history)
    w = stack.wafer(step.wafer)
    e, r = step.effect, step.recipe

    def layer(face: str, material: str, role: str, um: float, measured: bool, **extra: Any) -> None:
        # validated construction: pydantic-core builds a Layer in ~3 us, model_construct's Python
        # default resolution takes ~23 us
        w.layers(face).append(Layer(
            material=material, role=role, thickness_um=round(um, 4), step=step.uid, tool=tool, kind=step.kind,
            at=at, seq=seq, measured=measured, last_step=step.uid, **extra))

    if e.load is not None:
        w.material, w.thickness_um = e.load.material or w.material, e.load.thickness_um or w.thickness_um
        w.diameter_mm = e.load.diameter_mm or w.diameter_mm
        for pre in e.load.layers:
            layer(pre.face, pre.material, pre.role, pre.thickness_um, False, patterned=True)
        w.in_stack = True
    if e.thin is not None:
        w.thickness_um = round(resolve_um(e.thin.to, e.thin.nominal, r, result)[0], 4)
        w.thinned_by.append(step.uid)
        for h in w.holes:  # Flow E 15(c): thinning down to a filled via exposes it at the back
            if h.filled_by is not None and h.revealed_by is None and h.depth_um >= w.thickness_um:
                h.revealed_by = step.uid
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
    if e.open_layer is not None:
        found = w.present(step.face_for(e.open_layer.face), e.open_layer.role)
        if found:
            found[-1].opened_by = step.uid
            found[-1].opened_um = resolve_um(e.open_layer.depth_um, e.open_layer.nominal, r, result)[0]
            found[-1].last_step = step.uid
    if e.layer is not None:
        um, measured = resolve_um(e.layer.thickness_um, e.layer.nominal, r, result)
        layer(step.face_for(e.layer.face), resolve_text(e.layer.material, r), e.layer.role, um, measured,
              lines_holes=e.layer.lines_holes, covers=e.layer.covers, grade=e.layer.grade)
        for h in w.holes if e.layer.lines_holes else []:
            h.lined_by = h.lined_by or step.uid
    if e.plate is not None:
        face = step.face_for(e.plate.face)
        metal = resolve_text("recipe.metal", r)
        um, measured = resolve_um(e.plate.thickness_um, e.plate.nominal, r, result)
        for h in w.holes:  # the via electrodes fill the holes under the re-wiring (A12), or Flow D/E holes
            ready = h.opened_by is not None if e.plate.rewiring_and_via else h.lined_by is not None
            if (e.plate.rewiring_and_via or e.plate.fills_holes) and ready and h.filled_by is None:
                h.filled_by = step.uid
                layer(face, metal, "via_electrode", h.depth_um, measured)
        layer(face, metal, e.plate.role, um, measured)
    if e.planarize is not None:
        _planarize(w, step, resolve_um(e.planarize.to, e.planarize.nominal, r, result))
    if e.bond is not None:
        _bond(stack, step, Record(step=step.uid, tool=tool, at=at, seq=seq))
    if e.reflow is not None:
        height, measured = resolve_um(e.reflow.height_um, e.reflow.nominal, r, result)
        for la in w.present("front", "bump"):
            la.thickness_um, la.measured, la.last_step = round(height, 4), measured, step.uid
        for b in stack.bonds:
            if b.joint == "flip_chip" and step.wafer in (b.lower, b.upper) and b.reflowed_by is None:
                b.reflowed_by = step.uid
    if e.edge_traces is not None:
        um, _ = resolve_um(e.edge_traces.thickness_um, e.edge_traces.nominal, r, result)
        carriers = stack.carriers()
        if len(carriers) >= 2:
            top, bottom = carriers[-1], carriers[0]
            stack.traces.append(Trace(
                metal=resolve_text("recipe.metal", r), thickness_um=round(um, 4), upper=top.index,
                lower=bottom.index, upper_pads=bool(top.present("back", "ball_pad")),
                lower_pads=bool(bottom.present("back", "ball_pad")), step=step.uid, tool=tool, at=at,
                seq=seq))
    if e.dice is not None:
        stack.diced, stack.diced_by, stack.diced_seq = True, step.uid, seq
    stack.history.append(HistoryEntry(
        seq=seq, step=step.uid, spec_id=step.spec_id, kind=step.kind, tool=tool, at=at,
        wafers=list(step.touches), result=dict(result) if result is not None else None))
    applied.add(step.uid)
    for index in step.touches:
        touched = stack.wafer(index)
        if touched.state in (E90State.NEEDS_PROCESSING, E90State.IN_PROCESS):
            done = index in step.final_for
            touched.state = E90State.PROCESSED if done else E90State.IN_PROCESS


def _bond(stack: Stack, step: Step, made: Record) -> None:
    """A stack's wafer bond goes through the lower face's top layer; a flip-chip joint (Flow D) through
    the bumps on the chip's (upper's) bonded face."""
    bond = step.effect.bond
    assert bond is not None
    w, lower = stack.wafer(step.wafer), stack.wafer(step.onto or step.wafer - 1)
    through = w.top(bond.upper_face) if bond.joint == "flip_chip" else lower.top(bond.lower_face)
    stack.bonds.append(Bond(
        lower=lower.index, upper=w.index, lower_face=bond.lower_face, upper_face=bond.upper_face,
        through=through.material if through else None, through_role=through.role if through else None,
        through_um=through.thickness_um if through else None, joint=bond.joint, **made.model_dump()))
    w.in_stack = True


def _planarize(w: Wafer, step: Step, to: tuple[float, bool]) -> None:
    """Cut a face flat at `to` um above the terminal sites / re-wiring: terminals and posts down to it,
    the resin stack too; a skin over the `expose` features is cut open once `to` reaches their tops."""
    assert step.effect.planarize is not None
    height, measured = to
    face, expose = step.face_for(step.effect.planarize.face), step.effect.planarize.expose
    reached = any(la.thickness_um >= height for la in w.present(face, expose)) if expose else False
    base = 0.0
    for la in w.present(face):
        if la.role in PLANAR_FEATURES:
            left = min(la.thickness_um, height)
        elif la.role in PLANAR_RESINS:
            left = max(0.0, min(la.thickness_um, height - base))
            base += left
        else:
            continue
        if left < la.thickness_um:
            la.thickness_um, la.measured, la.last_step = round(left, 4), measured, step.uid
        if reached and la.covers == expose:
            la.covers, la.last_step = None, step.uid
