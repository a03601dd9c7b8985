"""Flow D (seed 003, `structure: flipchip`): the joint permissives and refusal rules of a stacked
flip-chip package built at strip level from two chip carriers and two chips.

Readings of the seed's claims the rules enforce (the claims check is flipchip_claims.py):
- each chip is flip-chip bonded, active (bumped) FRONT down onto the chip side (FRONT) of its OWN
  carrier - the carrier next to it in the finished package - and the joint conducts once reflowed in a
  profile made for the bump alloy;
- the chips are attached BACK to BACK through an adhesive applied over the FIRST chip's back, of an
  insulating, highly elastic (low-modulus, stress-absorbing) grade;
- the resin fills the gap between the carriers (so only after the attach), as thick as the gap the
  bumps, chips and adhesive leave; its grade has a low viscosity and a low water absorption;
- vias are drilled from the top carrier's outer face through carrier / resin / carrier after the fill
  (or traces join the two carriers' ball pads); balls go only on the top carrier's outer (BACK) face,
  after the carriers are joined; singulation comes last.
"""

from __future__ import annotations

from drivers.kinds.ball_mounter import ALLOYS, BallMounterRecipe, reflow_window_c
from sequencer.process.effects import BondEffect, resolve_um
from sequencer.process.flow import Step
from sequencer.process.stack_model import Layer, Stack, Wafer
from sequencer.process.structures.flipchip import limits as flipchip_limits

Found = list[tuple[str, str]]
_LIMITS = flipchip_limits()  # configs/structures/flipchip.yaml
ADHESIVE_MAX_MODULUS_GPA = _LIMITS.adhesive_max_modulus_gpa  # "high elasticity"
FILL_MAX_VISCOSITY_PA_S = _LIMITS.fill_max_viscosity_pa_s  # "low viscosity"
FILL_MAX_WATER_PCT = _LIMITS.fill_max_water_pct  # "low hygroscopicity"


def tolerance(um: float, share: float, floor: float) -> float:
    return max(floor, share * um)


def own_carrier(stack: Stack, chip: Wafer) -> Wafer | None:
    """The carrier next to the chip in the finished package (claim 1: 'its' carrier)."""
    near = [stack.wafer(i) for i in (chip.index - 1, chip.index + 1) if 1 <= i <= stack.size]
    return next((w for w in near if w.form == "carrier"), None)


def gap_um(stack: Stack) -> tuple[float, str]:
    """Height between the two carriers: bumps + chip + adhesive of every chip between them."""
    parts: list[str] = []
    total = 0.0
    for chip in stack.chips():
        bump = max((la.thickness_um for la in chip.present("front", "bump")), default=0.0)
        glue = sum(la.thickness_um for la in chip.present("back", "adhesive"))
        total += bump + chip.thickness_um + glue
        parts.append(f"{chip.name or chip.index} (bumps {bump:g} + chip {chip.thickness_um:g}"
                     + (f" + adhesive {glue:g})" if glue else ")"))
    return round(total, 4), " + ".join(parts)


def package_um(stack: Stack) -> float:
    return round(sum(w.thickness_um for w in stack.carriers()) + gap_um(stack)[0], 4)


def attached(stack: Stack) -> bool:
    return any(b.joint == "adhesive" for b in stack.bonds)


def joined(stack: Stack) -> bool:
    """The carriers are electrically joined: filled vias, or traces."""
    return bool(stack.traces) or any(h.filled_by for w in stack.carriers() for h in w.holes)


# --- permissives -------------------------------------------------------------------------------------
def joint_checks(stack: Stack, step: Step) -> Found:
    """May this flip-chip bond or back-to-back attach start? Both parts loaded, each joint made once."""
    bond = step.effect.bond
    assert bond is not None
    upper, lower = stack.wafer(step.wafer), stack.wafer(step.onto or step.wafer - 1)
    out: Found = [("not-in-stack", f"{w.label} is not loaded") for w in (lower, upper) if not w.in_stack]
    if bond.joint == "flip_chip":
        if any(b.joint == "flip_chip" and upper.index in (b.lower, b.upper) for b in stack.bonds):
            out.append(("already-bonded", f"{upper.label} is already flip-chip bonded"))
        if any(b.joint == "flip_chip" and lower.index in (b.lower, b.upper) for b in stack.bonds):
            out.append(("already-bonded", f"{lower.label} already carries a flip-chip bonded chip"))
        if not upper.present(bond.upper_face, "bump"):
            out.append(("bumps-missing", f"no solder bumps on the {bond.upper_face} of {upper.label}: a "
                                         "flip-chip joint is made by the chip's bumps (claim 1)"))
        return out
    top = lower.top(bond.lower_face)
    if top is None or top.role != "adhesive":
        what = f"its top layer is {top.material} {top.role}" if top else "it is bare"
        out.append(("attach-adhesive", f"no adhesive on the {bond.lower_face} of {lower.label} ({what}): the "
                                       "chips attach through an adhesive layer (claim 1)"))
    return out


def reflow_checks(stack: Stack, step: Step) -> Found:
    mine = [b for b in stack.bonds if b.joint == "flip_chip" and step.wafer in (b.lower, b.upper)]
    if not [b for b in mine if b.reflowed_by is None]:
        return [("nothing-to-reflow", f"{stack.wafer(step.wafer).label} has no unreflowed flip-chip joint")]
    return []


# --- refusal rules before a step ---------------------------------------------------------------------
def _joint(stack: Stack, step: Step, joint: str) -> tuple[BondEffect, Wafer, Wafer] | None:
    """(the bond, the step's member, the member it goes onto) if the step makes a `joint` bond."""
    bond = step.effect.bond
    if bond is None or bond.joint != joint:
        return None
    return bond, stack.wafer(step.wafer), stack.wafer(step.onto or step.wafer - 1)


def _flip_chip(stack: Stack, step: Step) -> Found:
    found = _joint(stack, step, "flip_chip")
    if found is None:
        return []
    bond, chip, carrier = found
    out: Found = []
    if (bond.lower_face, bond.upper_face) != ("front", "front"):
        out.append(("flip-chip-orientation", f"{chip.label} {bond.upper_face} onto {carrier.label} "
                    f"{bond.lower_face}: the chip's active FRONT (bumps) faces down onto the carrier's chip "
                    "side (FRONT) (claim 1)"))
    if chip.form != "chip" or carrier.form != "carrier":
        out.append(("flip-chip-own-carrier", f"{chip.label} ({chip.form}) onto {carrier.label} "
                    f"({carrier.form}): a flip-chip joint puts a chip onto a carrier"))
    elif own_carrier(stack, chip) is not carrier:
        mine = own_carrier(stack, chip)
        out.append(("flip-chip-own-carrier", f"{chip.label} onto {carrier.label}: each chip is bonded to its "
                    f"own carrier ({mine.label if mine else 'none'}) (claim 1)"))
    return out


def _reflow(stack: Stack, step: Step) -> Found:
    if step.effect.reflow is None or step.recipe is None:
        return []
    r = step.recipe
    peak, alloy = (r.peak_temp_c, r.alloy) if isinstance(r, BallMounterRecipe) else (0.0, "?")
    out: Found = []
    for la in stack.wafer(step.wafer).present("front", "bump"):
        if la.material not in ALLOYS:
            out.append(("bump-reflow", f"bump alloy {la.material} is not in the alloy table "
                        f"{sorted(ALLOYS)}"))
            continue
        lo, hi = reflow_window_c(la.material)
        if not lo <= peak <= hi:
            out.append(("bump-reflow", f"reflow profile for {alloy} peaks at {peak:g} C, outside the "
                        f"{la.material} bumps' window {lo:g}-{hi:g} C: the joints would not form"))
    return out


def _attach(stack: Stack, step: Step) -> Found:
    found = _joint(stack, step, "adhesive")
    if found is None:
        return []
    bond, upper, lower = found
    out: Found = []
    if (bond.lower_face, bond.upper_face) != ("back", "back") or upper.form != "chip" or lower.form != "chip":
        out.append(("back-to-back-attach", f"{upper.label} {bond.upper_face} onto {lower.label} "
                    f"{bond.lower_face}: the chips attach non-active BACK to BACK (claim 1)"))
    chips = stack.chips()
    if chips and lower is not chips[0]:
        out.append(("back-to-back-attach", f"the adhesive is on {lower.label}: it is applied over the FIRST "
                    f"chip's back ({chips[0].label}) (claim 1)"))
    return out + _reflowed(stack, "the back-to-back attach")


def _reflowed(stack: Stack, what: str) -> Found:
    cold = [b for b in stack.bonds if b.joint == "flip_chip" and b.reflowed_by is None]
    return [("flip-chip-not-reflowed", f"{what} before the flip-chip joint {b.step} "
             f"({stack.wafer(b.upper).label}) is reflowed") for b in cold]


def _fill(stack: Stack, step: Step) -> Found:
    layer = step.effect.layer
    if layer is None or layer.role != "encapsulant":
        return []
    carriers = stack.carriers()
    w, face = stack.wafer(step.wafer), step.face_for(layer.face)
    out: Found = []
    if not carriers or w is not carriers[0] or face != "front":
        out.append(("fill-between-carriers", f"resin on the {face} of {w.label}: it fills the gap between "
                    "the carriers, from the bottom carrier's chip side (claim 1)"))
    if not attached(stack):
        out.append(("fill-between-carriers", "resin fill before the chips are attached: there is no gap "
                    "between the two carriers yet (claim 1)"))
    return out + _reflowed(stack, "the resin fill")


def _vias(stack: Stack, step: Step) -> Found:
    holes, carriers = step.effect.through_holes, stack.carriers()
    if holes is None or not carriers:
        return []
    depth, _ = resolve_um(holes.depth_um, holes.nominal, step.recipe, None)
    out: Found = []
    if not stack.wafer(1).present("front", "encapsulant"):
        out.append(("via-after-fill", "vias drilled before the resin fill: they must run through the resin "
                    "between the carriers (claim 1)"))
    if stack.wafer(step.wafer) is not carriers[-1] or step.face != "back":
        out.append(("via-depth", f"vias drilled from the {step.face} of {stack.wafer(step.wafer).label}: "
                    f"they start on the outer face (back) of the top carrier {carriers[-1].label}"))
    full = package_um(stack)
    if abs(depth - full) > tolerance(full, 0.02, 10.0):
        out.append(("via-depth", f"vias {depth:g} um deep in a {full:g} um package (carriers + gap "
                    f"{gap_um(stack)[0]:g} um): they must cross carrier, resin and carrier (claim 1)"))
    return out


def _balls(stack: Stack, step: Step) -> Found:
    layer, carriers = step.effect.layer, stack.carriers()
    if layer is None or layer.role != "solder" or not carriers:
        return []
    w, face = stack.wafer(step.wafer), step.face_for(layer.face)
    out: Found = []
    if w is not carriers[-1] or face != "back":
        out.append(("balls-outer-face", f"solder balls on the {face} of {w.label}: only on the exposed outer "
                    f"face (back) of the second carrier {carriers[-1].label} (claim 2)"))
    if not joined(stack):
        out.append(("balls-before-interconnect", "balls before vias or traces join the carriers: the first "
                    "chip reaches the balls only through them (claims 1, 7)"))
    return out


def _singulate(stack: Stack, step: Step) -> Found:
    if step.effect.dice is None or not stack.carriers():
        return []
    missing = [what for what, done in (
        ("attach", attached(stack)), ("resin fill", bool(stack.wafer(1).present("front", "encapsulant"))),
        ("vias/traces", joined(stack)), ("balls", bool(stack.carriers()[-1].present("back", "solder"))))
        if not done]
    return [("singulate-last", f"singulated before the {', '.join(missing)}: singulation is the last "
             "step of the package")] if missing else []


def _traces(stack: Stack, step: Step) -> Found:
    if step.effect.edge_traces is None:
        return []
    out: Found = []
    if not stack.wafer(1).present("front", "encapsulant"):
        out.append(("traces-after-fill", "edge traces before the resin fill: they run across carrier, "
                    "resin and carrier (claim 7)"))
    bare = [c.label for c in stack.carriers() if not c.present("back", "ball_pad")]
    if bare:
        out.append(("trace-ends", f"no ball pads on {', '.join(bare)}: each trace ends on the ball pads "
                    "of both carriers (claim 12)"))
    return out


PRE_RULES = (_flip_chip, _reflow, _attach, _fill, _vias, _balls, _singulate, _traces)


def before(stack: Stack, step: Step) -> Found:
    return [found for rule in PRE_RULES for found in rule(stack, step)]


# --- rules on the layers a step formed ---------------------------------------------------------------
def grade_problems(stack: Stack, la: Layer) -> Found:
    """Seed 003 claims 5/10 (adhesive) and 6/11 (resin) on a layer's grade figures."""
    rule = {"adhesive": "adhesive-material", "encapsulant": "fill-resin-material"}.get(la.role)
    if rule is None:
        return []
    spec = stack.materials.get(la.grade or "")
    if spec is None:
        return [(rule, f"{la.material} {la.role} ({la.step}) names no grade of the flow's materials: its "
                 "properties are unknown")]
    name = la.grade
    out: Found = []
    if spec["family"] != la.material:
        out.append((rule, f"grade {name} is {spec['family']}, the layer is {la.material}"))
    if not spec["insulating"]:
        out.append((rule, f"{name} is not insulating (claims 5, 6)"))
    if la.role == "adhesive" and spec["modulus_gpa"] > ADHESIVE_MAX_MODULUS_GPA:
        out.append((rule, f"{name}: modulus {spec['modulus_gpa']:g} GPa above "
                    f"{ADHESIVE_MAX_MODULUS_GPA:g} GPa: not a high-elasticity adhesive (claim 5)"))
    if la.role == "encapsulant":
        visc, water = spec.get("viscosity_pa_s"), spec.get("water_absorption_pct")
        if visc is None or visc > FILL_MAX_VISCOSITY_PA_S:
            out.append((rule, f"{name}: viscosity {'unknown' if visc is None else f'{visc:g}'} Pa.s, not low "
                        f"(<= {FILL_MAX_VISCOSITY_PA_S:g}) (claim 6)"))
        if water is None or water > FILL_MAX_WATER_PCT:
            shown = "unknown" if water is None else f"{water:g}"
            out.append((rule, f"{name}: water absorption {shown} %, not low (<= {FILL_MAX_WATER_PCT:g} %) "
                        "(claim 6)"))
    return out


def fill_problems(stack: Stack, la: Layer) -> Found:
    """The resin is as thick as the gap between the carriers: thinner leaves chips or bumps bare."""
    if la.role != "encapsulant":
        return []
    gap, parts = gap_um(stack)
    if abs(la.thickness_um - gap) <= tolerance(gap, 0.03, 5.0):
        return []
    what = "leaves chips and bumps bare" if la.thickness_um < gap else "overflows the carriers"
    return [("fill-gap", f"resin {la.thickness_um:g} um in a {gap:g} um gap ({parts}): {what} (claim 1)")]


def after(stack: Stack, step: Step) -> Found:
    out: Found = []
    for w in stack.wafers:
        for face in ("front", "back"):
            for la in w.present(face):
                if la.last_step == step.uid:
                    out += grade_problems(stack, la) + fill_problems(stack, la)
    return out
