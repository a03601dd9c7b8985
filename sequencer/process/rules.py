"""Flow refusal rules: what a flow must not do, checked step by step while it is simulated on a traveler.

`before_step` reads the traveler as the step would find it (the wafer permissives plus design rules on
the step's recipe and effect); `after_step` reads the layers the step formed or changed (claims 3-5 are
properties of layers, so they are checked on the layer the traveler actually records). Every violation
names its rule, so a refused flow says which claim or process limit it breaks. The stack rules here are
seed 000/001's; each other structure brings its own (rules_csp.py, flipchip.py, double_sided.py) and
shares only the process limits (`COMMON`: grind targets, recipe material, wafer/strip size).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from drivers.kinds.coater import CoaterRecipe
from drivers.kinds.dicing_saw import DicingSawRecipe
from drivers.kinds.grinder import GrinderRecipe
from drivers.kinds.plater import PlaterRecipe
from sequencer.process.effects import CSP_RESINS, CSP_TERMINALS, resolve_text, resolve_um
from sequencer.process.flow import Step
from sequencer.process.permissives import permissive_checks
from sequencer.process.rules_csp import csp_problems, second_reflow
from sequencer.process.stack_model import Layer, Stack, Wafer
from sequencer.process.structures import named
from sequencer.process.structures.limits import StackLimits, load_limits

_LIMITS = load_limits("stack", StackLimits)  # configs/structures/stack.yaml
INSULATING_MATERIALS = _LIMITS.insulating_materials  # claim 4
INSULATING_UM = _LIMITS.insulating_um
RESIN_UM = _LIMITS.resin_um
HEAT_UM = _LIMITS.heat_um
THIN_FILM_KINDS = _LIMITS.thin_film_kinds  # claim 3: sputtering or vacuum deposition
MIN_WAFER_UM = _LIMITS.min_wafer_um
GRIND_START_TOL = _LIMITS.grind_start_tol
MATERIAL_FIELDS = ("material", "metal", "film")


@dataclass(frozen=True)
class Violation:
    step: str  # step uid (or spec id / "stack" for the finished-stack claims)
    rule: str
    message: str


Found = list[tuple[str, str]]


def heat_metal(material: str) -> bool:
    """Cu, Al or an alloy of them (claim 3): 'Cu', 'Al', 'AlCu', 'CuW', 'Al alloy', ..."""
    return bool(re.fullmatch(r"(Cu|Al)([A-Z][a-z]?[0-9.]*)*|(Cu|Al) alloy", material))


def copper(material: str) -> bool:
    """Cu or a Cu alloy (claim 6)."""
    return bool(re.fullmatch(r"Cu([A-Z][a-z]?[0-9.]*)*|Cu alloy", material))


def _tol(thickness: float) -> float:
    return max(1.0, 0.01 * thickness)


def _bond_orientation(stack: Stack, step: Step) -> Found:
    bond = step.effect.bond
    if bond is None or (bond.lower_face, bond.upper_face) == ("front", "back"):
        return []
    faces = f"lower {bond.lower_face} to upper {bond.upper_face}"
    rule = {("front", "front"): "front-to-front-bond", ("back", "back"): "back-to-back-bond"}.get(
        (bond.lower_face, bond.upper_face), "bond-orientation")
    return [(rule, f"{faces}: the lower wafer's FRONT must face the upper wafer's BACK (claim 2)")]


def _dicing(stack: Stack, step: Step) -> Found:
    if step.effect.dice is None:
        return []
    loose = [w.index for w in stack.wafers if not w.in_stack]
    if loose or len(stack.bonds) < stack.size - 1:
        return [("dicing-before-bonding", f"{len(stack.bonds)} of {stack.size - 1} bonds made, wafers "
                 f"{loose} not bonded: dice only after every wafer is bonded (claim 7)")]
    return []


def _through_holes(stack: Stack, step: Step) -> Found:
    holes = step.effect.through_holes
    if holes is None:
        return []
    w = stack.wafer(step.wafer)
    depth, _ = resolve_um(holes.depth_um, holes.nominal, step.recipe, None)
    if depth > w.thickness_um + _tol(w.thickness_um):
        return [("through-hole-depth", f"holes {depth:g} um deep in a {w.thickness_um:g} um wafer: deeper "
                                       "than the wafer, into the insulating layer and wiring below")]
    if depth < w.thickness_um - _tol(w.thickness_um):
        return [("through-hole-depth", f"holes {depth:g} um deep in a {w.thickness_um:g} um wafer: they do "
                                       "not reach the insulating layer (depth = wafer thickness)")]
    return []


def _hole_opening(stack: Stack, step: Step) -> Found:
    opening = step.effect.open_holes
    bond = next((b for b in stack.bonds if b.upper == step.wafer), None)
    if opening is None or bond is None or bond.through_um is None:
        return []
    depth, _ = resolve_um(opening.depth_um, opening.nominal, step.recipe, None)
    if depth < bond.through_um:
        return [("hole-opening", f"opening {depth:g} um is thinner than the {bond.through_um:g} um "
                 f"{bond.through} layer below: the wiring of wafer {bond.lower} stays covered")]
    return []


def _rewiring_via(stack: Stack, step: Step) -> Found:
    plate, w = step.effect.plate, stack.wafer(step.wafer)
    if plate is None or step.recipe is None:
        return []
    metal = resolve_text("recipe.metal", step.recipe)
    fill = isinstance(step.recipe, PlaterRecipe) and step.recipe.fill_vias
    waiting = [h for h in w.holes if h.opened_by and not h.filled_by]
    out: Found = []
    if plate.rewiring_and_via and not copper(metal):
        out.append(("rewiring-via-one-step", f"re-wiring and via electrode of {metal}: must be Cu or a Cu "
                                             "alloy (claim 6)"))
    if plate.rewiring_and_via and not fill:
        out.append(("rewiring-via-one-step", "the recipe does not fill vias (fill_vias: false)"))
    if fill and not plate.rewiring_and_via:
        out.append(("rewiring-via-one-step", f"fills vias without forming the re-wiring in the same "
                                             f"step ({plate.role}): claim 6 needs both in one plating"))
    if waiting and plate.role == "rewiring" and not plate.rewiring_and_via:
        out.append(("rewiring-via-one-step", f"re-wiring plated on wafer {w.index} while its opened "
                                             "through-holes stay empty: claim 6 needs both in one plating"))
    return out


def _thin(stack: Stack, step: Step) -> Found:
    thin, w, r = step.effect.thin, stack.wafer(step.wafer), step.recipe
    if thin is None:
        return []
    out: Found = []
    start = r.start_thickness_um if isinstance(r, GrinderRecipe) else None
    if start is not None and abs(start - w.thickness_um) > GRIND_START_TOL * w.thickness_um:
        out.append(("grind-thickness", f"recipe start_thickness_um {start:g} but wafer {w.index} is "
                                       f"{w.thickness_um:g} um"))
    target, _ = resolve_um(thin.to, thin.nominal, r, None)
    if target < MIN_WAFER_UM:
        out.append(("grind-thickness", f"thins wafer {w.index} to {target:g} um, below {MIN_WAFER_UM:g} um"))
    return out


def _recipe_material(stack: Stack, step: Step) -> Found:
    layer, r = step.effect.layer, step.recipe
    if layer is None or r is None:
        return []
    field = next((f for f in MATERIAL_FIELDS if f in type(r).model_fields), None)
    made = resolve_text(layer.material, r)
    given = r.setpoints().get(field) if field is not None else None
    if field is not None and str(given) != made:
        return [("recipe-material", f"effect says {made} but the recipe's {field} is {given}")]
    return []


def _wafer_size(stack: Stack, step: Step) -> Found:
    r, w = step.recipe, stack.wafer(step.wafer)
    out: Found = []
    what = "strip" if w.width_mm is not None else "wafer"  # a strip: its length stands for the size
    diameter = r.wafer_diameter_mm if isinstance(r, CoaterRecipe) else None
    if diameter is not None and diameter != w.diameter_mm:
        out.append(("recipe-wafer-size", f"recipe wafer_diameter_mm {diameter:g}, {w.label} is "
                                         f"{w.diameter_mm} mm"))
    area = r.plated_area_cm2 if isinstance(r, PlaterRecipe) else None
    if area is not None and area > w.area_cm2() * 1.01:
        out.append(("recipe-wafer-size", f"plated_area_cm2 {area:g} exceeds the {w.area_cm2():.0f} cm2 "
                                         f"{what}"))
    cut = r.cut_length_mm if isinstance(r, DicingSawRecipe) else None
    if cut is not None and cut > w.diameter_mm + 10:
        out.append(("recipe-wafer-size", f"cut_length_mm {cut:g} longer than a {w.diameter_mm} mm {what}"))
    return out


Rule = Callable[[Stack, Step], Found]
COMMON: tuple[Rule, ...] = (_thin, _recipe_material, _wafer_size)
PRE_RULES: tuple[Rule, ...] = (
    _bond_orientation, _dicing, _through_holes, _hole_opening, _rewiring_via, *COMMON, second_reflow,
)


def before_step(stack: Stack, step: Step) -> list[Violation]:
    """Violations of the step as it would start on this traveler (permissives included)."""
    found = permissive_checks(stack, step)
    for rule in named(stack.structure).pre_rules():
        found += rule(stack, step)
    return [Violation(step.uid, name, message) for name, message in found]


def layer_problems(stack: Stack, w: Wafer, face: str, la: Layer) -> Found:
    """Claims 3-5 on one layer: the heat-radiation, insulating and resin-sealing layer rules."""
    out: Found = []
    where = f"{la.material} {la.role} {la.thickness_um:g} um on the {face} of wafer {w.index}"
    after_dicing = stack.diced_seq is not None and la.seq > stack.diced_seq
    if la.role == "insulating":
        lo, hi = INSULATING_UM
        if la.material not in INSULATING_MATERIALS:
            out.append(("insulating-layer", f"{where}: must be polyimide or epoxy (claim 4)"))
        if not lo <= la.thickness_um <= hi:
            out.append(("insulating-layer", f"{where}: outside {lo:g}-{hi:g} um"))
    if la.role == "heat_radiation":
        lo, hi = HEAT_UM
        problems = [
            (w.index != 1 or face != "back", "only on the BACK of the LOWERMOST wafer"),
            (not heat_metal(la.material), "must be Cu, Al or an alloy"),
            (la.kind not in THIN_FILM_KINDS, f"must be a thin film (sputter), not {la.kind}"),
            (not lo <= la.thickness_um <= hi, f"outside {lo:g}-{hi:g} um"),
            (after_dicing, "formed after dicing"),
        ]
        out += [("heat-radiation-layer", f"{where}: {text} (claim 3)") for bad, text in problems if bad]
    if la.role == "resin_seal":
        lo, hi = RESIN_UM
        problems = [
            (w.index != stack.size or face != "front", "only on the FRONT of the UPPERMOST wafer"),
            (not lo <= la.thickness_um <= hi, f"outside {lo:g}-{hi:g} um"),
            (after_dicing, "formed after dicing"),
        ]
        out += [("resin-sealing-layer", f"{where}: {text} (claim 5)") for bad, text in problems if bad]
    return out


def after_step(stack: Stack, step: Step) -> list[Violation]:
    """Violations in the layers this step formed or changed, as the structure judges them."""
    return [Violation(step.uid, n, m) for n, m in named(stack.structure).after(stack, step)]


def layer_rules_after(stack: Stack, step: Step) -> Found:
    """The stacked-wafer (and csp) layer rules on what the step formed or changed."""
    out: Found = []
    for index in step.touches:
        w = stack.wafer(index)
        for face in ("front", "back"):
            csp = (*CSP_RESINS, *CSP_TERMINALS)
            if [la for la in w.layers(face) if la.last_step == step.uid and la.role in csp]:
                out += csp_problems(w, face)
            for la in w.layers(face):
                if la.last_step == step.uid and la.present:
                    out += layer_problems(stack, w, face, la)
    return out
