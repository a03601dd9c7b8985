"""What each flow effect does to the traveler: one small handler per effect, applied by
traveler.apply_step in ORDER with the step's context (`Done`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sequencer.process import effects as fx
from sequencer.process.effects import PLANAR_FEATURES, PLANAR_RESINS, resolve_text, resolve_um
from sequencer.process.flow import Step
from sequencer.process.stack_model import Bond, Holes, Layer, Record, Stack, Trace, Wafer


@dataclass
class Done:
    """A completed step being recorded: where, what the tool measured, by whom, when."""

    stack: Stack
    step: Step
    w: Wafer  # the step's wafer
    result: Mapping[str, Any] | None
    tool: str
    at: str
    seq: int

    def um(self, value: fx.Number, nominal: fx.Number | None) -> tuple[float, bool]:
        return resolve_um(value, nominal, self.step.recipe, self.result)

    def layer(self, face: str, material: str, role: str, um: float, measured: bool, **extra: Any) -> None:
        # validated construction: pydantic-core builds a Layer in ~3 us, model_construct's Python
        # default resolution takes ~23 us
        s = self.step
        self.w.layers(face).append(Layer(
            material=material, role=role, thickness_um=round(um, 4), step=s.uid, tool=self.tool, kind=s.kind,
            at=self.at, seq=self.seq, measured=measured, last_step=s.uid, **extra))


def load(d: Done, e: fx.LoadEffect) -> None:
    w = d.w
    w.material, w.thickness_um = e.material or w.material, e.thickness_um or w.thickness_um
    w.diameter_mm = e.diameter_mm or w.diameter_mm
    for pre in e.layers:
        d.layer(pre.face, pre.material, pre.role, pre.thickness_um, False, patterned=True)
    w.in_stack = True


def thin(d: Done, e: fx.ThinEffect) -> None:
    w = d.w
    w.thickness_um = round(d.um(e.to, e.nominal)[0], 4)
    w.thinned_by.append(d.step.uid)
    for h in w.holes:  # Flow E 15(c): thinning down to a filled via exposes it at the back
        if h.filled_by is not None and h.revealed_by is None and h.depth_um >= w.thickness_um:
            h.revealed_by = d.step.uid


def remove(d: Done, e: fx.RemoveEffect) -> None:
    for la in d.w.present(d.step.face_for(e.face)):
        if la.role in e.roles():
            la.removed_by, la.removed_at = d.step.uid, d.at


def update(d: Done, e: fx.UpdateEffect) -> None:
    found = d.w.present(d.step.face_for(e.face), e.role)
    if not found:
        return
    la = found[-1]
    if e.thickness_um is not None:
        la.thickness_um, la.measured = d.um(e.thickness_um, e.nominal)
    la.cured = la.cured if e.cured is None else e.cured
    la.patterned = la.patterned if e.patterned is None else e.patterned
    la.last_step = d.step.uid


def through_holes(d: Done, e: fx.HolesEffect) -> None:
    depth, measured = d.um(e.depth_um, e.nominal)
    d.w.holes.append(Holes(depth_um=depth, step=d.step.uid, tool=d.tool, at=d.at, seq=d.seq,
                           measured=measured))


def open_holes(d: Done, e: fx.HolesEffect) -> None:
    depth, _ = d.um(e.depth_um, e.nominal)
    for h in d.w.holes:
        if h.opened_by is None:
            h.opened_by, h.opened_depth_um = d.step.uid, depth


def open_layer(d: Done, e: fx.OpenLayerEffect) -> None:
    found = d.w.present(d.step.face_for(e.face), e.role)
    if found:
        found[-1].opened_by = d.step.uid
        found[-1].opened_um = d.um(e.depth_um, e.nominal)[0]
        found[-1].last_step = d.step.uid


def layer(d: Done, e: fx.LayerEffect) -> None:
    um, measured = d.um(e.thickness_um, e.nominal)
    d.layer(d.step.face_for(e.face), resolve_text(e.material, d.step.recipe), e.role, um, measured,
            lines_holes=e.lines_holes, covers=e.covers, grade=e.grade)
    for h in d.w.holes if e.lines_holes else []:
        h.lined_by = h.lined_by or d.step.uid


def plate(d: Done, e: fx.PlateEffect) -> None:
    face = d.step.face_for(e.face)
    metal = resolve_text("recipe.metal", d.step.recipe)
    um, measured = d.um(e.thickness_um, e.nominal)
    for h in d.w.holes:  # the via electrodes fill the holes under the re-wiring (A12), or Flow D/E holes
        ready = h.opened_by is not None if e.rewiring_and_via else h.lined_by is not None
        if (e.rewiring_and_via or e.fills_holes) and ready and h.filled_by is None:
            h.filled_by = d.step.uid
            d.layer(face, metal, "via_electrode", h.depth_um, measured)
    d.layer(face, metal, e.role, um, measured)


def planarize(d: Done, e: fx.PlanarizeEffect) -> None:
    """Cut a face flat at `to` um above the terminal sites / re-wiring: terminals and posts down to it,
    the resin stack too; a skin over the `expose` features is cut open once `to` reaches their tops."""
    height, measured = d.um(e.to, e.nominal)
    w, uid = d.w, d.step.uid
    face, expose = d.step.face_for(e.face), e.expose
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
            la.thickness_um, la.measured, la.last_step = round(left, 4), measured, uid
        if reached and la.covers == expose:
            la.covers, la.last_step = None, uid


def bond(d: Done, e: fx.BondEffect) -> None:
    """A stack's wafer bond goes through the lower face's top layer; a flip-chip joint (Flow D) through
    the bumps on the chip's (upper's) bonded face."""
    stack, step, w = d.stack, d.step, d.w
    lower = stack.wafer(step.onto or step.wafer - 1)
    through = w.top(e.upper_face) if e.joint == "flip_chip" else lower.top(e.lower_face)
    made = Record(step=step.uid, tool=d.tool, at=d.at, seq=d.seq)
    stack.bonds.append(Bond(
        lower=lower.index, upper=w.index, lower_face=e.lower_face, upper_face=e.upper_face,
        through=through.material if through else None, through_role=through.role if through else None,
        through_um=through.thickness_um if through else None, joint=e.joint, **made.model_dump()))
    w.in_stack = True


def reflow(d: Done, e: fx.ReflowEffect) -> None:
    height, measured = d.um(e.height_um, e.nominal)
    for la in d.w.present("front", "bump"):
        la.thickness_um, la.measured, la.last_step = round(height, 4), measured, d.step.uid
    for b in d.stack.bonds:
        if b.joint == "flip_chip" and d.step.wafer in (b.lower, b.upper) and b.reflowed_by is None:
            b.reflowed_by = d.step.uid


def edge_traces(d: Done, e: fx.EdgeTraceEffect) -> None:
    um, _ = d.um(e.thickness_um, e.nominal)
    carriers = d.stack.carriers()
    if len(carriers) >= 2:
        top, bottom = carriers[-1], carriers[0]
        d.stack.traces.append(Trace(
            metal=resolve_text("recipe.metal", d.step.recipe), thickness_um=round(um, 4), upper=top.index,
            lower=bottom.index, upper_pads=bool(top.present("back", "ball_pad")),
            lower_pads=bool(bottom.present("back", "ball_pad")), step=d.step.uid, tool=d.tool, at=d.at,
            seq=d.seq))


def dice(d: Done, e: fx.DiceEffect) -> None:
    d.stack.diced, d.stack.diced_by, d.stack.diced_seq = True, d.step.uid, d.seq


HANDLERS: dict[str, Callable[[Done, Any], None]] = {
    "load": load, "thin": thin, "remove": remove, "update": update, "through_holes": through_holes,
    "open_holes": open_holes, "open_layer": open_layer, "layer": layer, "plate": plate,
    "planarize": planarize, "bond": bond, "reflow": reflow, "edge_traces": edge_traces, "dice": dice,
}
ORDER = tuple(HANDLERS)  # the order a step's several effects apply in
