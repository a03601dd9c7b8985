"""Seed 003's claims on a finished Flow D package (`structure: flipchip`), read from the traveler only.

The claims come in two families: 1-6 for carriers joined by conductive through vias, 7-12 for carriers
joined by conductive traces; the family is the one the traveler shows (traces recorded -> 7-12). Claim 2
(balls on the second carrier's exposed face) is checked in both. The layer figures are judged with the
same rules as the step-by-step check (flipchip.py).
"""

from __future__ import annotations

from sequencer.process.claim_types import ClaimCheck, claim_result
from sequencer.process.flipchip import (
    fill_problems,
    gap_um,
    grade_problems,
    own_carrier,
    package_um,
    tolerance,
)
from sequencer.process.stack_model import Stack


def _joints(stack: Stack) -> list[str]:
    out: list[str] = []
    carriers, chips = stack.carriers(), stack.chips()
    if len(carriers) != 2 or len(chips) < 2:
        out.append(f"{len(carriers)} carriers and {len(chips)} chips: the package has two carriers, each "
                   "with its chip")
    for chip in chips:
        joints = [b for b in stack.bonds if b.joint == "flip_chip" and b.upper == chip.index]
        mine = own_carrier(stack, chip)
        if len(joints) != 1:
            out.append(f"{chip.label} has {len(joints)} flip-chip joints")
            continue
        b = joints[0]
        if mine is None or b.lower != mine.index:
            out.append(f"{chip.label} is bonded to {stack.wafer(b.lower).label}, not its own carrier")
        if (b.lower_face, b.upper_face) != ("front", "front") or b.through_role != "bump":
            out.append(f"{chip.label}: {b.step} is not active face down through solder bumps")
        if b.reflowed_by is None:
            out.append(f"{chip.label}: flip-chip joint {b.step} never reflowed")
    attach = [b for b in stack.bonds if b.joint == "adhesive"]
    if len(attach) != 1:
        out.append(f"{len(attach)} chip-to-chip attaches (one expected)")
    for b in attach:
        if (b.lower_face, b.upper_face) != ("back", "back") or b.through_role != "adhesive":
            out.append(f"attach {b.step}: {b.lower_face} to {b.upper_face} through {b.through or 'nothing'}, "
                       "not back to back through an adhesive")
        if chips and b.lower != chips[0].index:
            out.append(f"attach {b.step}: the adhesive is not on the first chip's back")
    return out


def _fill(stack: Stack) -> list[str]:
    fills = stack.wafer(1).present("front", "encapsulant")
    if not fills:
        return ["no resin between the carriers"]
    attach = [b.seq for b in stack.bonds if b.joint == "adhesive"]
    out = [f"resin {la.step} filled before the chips were attached" for la in fills
           if attach and la.seq < min(attach)]
    out += [m for la in fills for _, m in fill_problems(stack, la)]
    return out + [f"resin {la.step} not cured" for la in fills if not la.cured]


def _vias(stack: Stack) -> list[str]:
    top = stack.carriers()[-1] if stack.carriers() else None
    holes = top.holes if top is not None else []
    if not holes:
        return ["no through vias joining the carriers"]
    fills = stack.wafer(1).present("front", "encapsulant")
    full = package_um(stack)
    out: list[str] = []
    for h in holes:
        if h.filled_by is None:
            out.append(f"vias {h.step} not filled with metal")
        if fills and h.seq < fills[0].seq:
            out.append(f"vias {h.step} drilled before the resin fill")
        if abs(h.depth_um - full) > tolerance(full, 0.02, 10.0):
            out.append(f"vias {h.step} {h.depth_um:g} um deep in a {full:g} um package")
    return out


def _singulated(stack: Stack) -> list[str]:
    if not stack.diced or stack.diced_seq is None:
        return ["the strip is not singulated"]
    late = [h.step for h in stack.history if h.seq > stack.diced_seq]
    return [f"{s} after singulation" for s in late]


def flipchip_claims(stack: Stack) -> list[ClaimCheck]:
    traces = bool(stack.traces)
    twin = {1: 7, 3: 8, 4: 9, 5: 10, 6: 11}  # the trace family's claims mirror the via family's

    def n(k: int) -> int:
        return twin[k] if traces else k

    carriers = stack.carriers()
    top = carriers[-1] if carriers else None
    link = [] if traces else _vias(stack)
    structure = _joints(stack) + _fill(stack) + link + _singulated(stack)
    gap, parts = gap_um(stack)
    what = "traces" if traces else "through vias"
    balls = [f"solder on the {face} of {w.label}" for w in stack.wafers for face in ("front", "back")
             for _ in w.present(face, "solder") if w is not top or face != "back"]
    balls += [] if top is not None and top.present("back", "solder") else ["no balls on the second carrier"]
    types = {w.carrier_type for w in carriers}
    kind = next(iter(types)) if len(types) == 1 else None
    type_claim = n(4) if kind == "tab_tape" else n(3)
    glue = [m for w in stack.chips() for la in w.present("back", "adhesive")
            for _, m in grade_problems(stack, la)]
    glue += [] if any(w.present("back", "adhesive") for w in stack.chips()) else ["no adhesive layer"]
    resin = [m for la in stack.wafer(1).present("front", "encapsulant") for _, m in grade_problems(stack, la)]
    out = [
        claim_result(n(1), f"carriers each with a flip-chip bonded chip, chips back to back through an "
                     f"adhesive, resin between the carriers, carriers joined by {what}", structure,
                     f"{len(carriers)} carriers, gap {gap:g} um ({parts}), singulated by {stack.diced_by}"),
        claim_result(2, "solder balls only on the exposed (outer) face of the second carrier", balls,
                     f"balls on the back of {top.label if top else '-'}"),
        claim_result(type_claim, "both carriers substrates (claim 3/8) or both TAB tapes (claim 4/9)",
                     [] if kind in ("substrate", "tab_tape") else
                     [f"carrier types {sorted(map(str, types))}"],
                     f"both {kind}"),
        claim_result(n(5), "adhesive: insulating, high elasticity", glue, "insulating low-modulus adhesive"),
        claim_result(n(6), "resin: low hygroscopicity, low viscosity", resin or
                     (["no resin"] if not stack.wafer(1).present("front", "encapsulant") else []),
                     "low-viscosity low-moisture resin"),
    ]
    if traces:
        ends = [f"traces {t.step}: no ball pads on {'the upper' if not t.upper_pads else 'the lower'} carrier"
                for t in stack.traces if not (t.upper_pads and t.lower_pads)]
        out.append(claim_result(12, "each trace joins the second carrier's ball pads to the first's", ends,
                                f"{len(stack.traces)} trace set(s) pad to pad"))
    return out
