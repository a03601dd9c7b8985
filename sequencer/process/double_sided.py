"""Flow E (seed 004, `structure: double_sided`): a wafer-level package with terminals on BOTH faces.

Seed 004 is a figure list; its captions give the order: form re-wiring, form Cu posts, remove the
exposed metal film (5(d)-(f)); seal with resin, polish the surface, polish the back side, seal the back
side, expose the back-side re-wiring, form terminals, form terminals (15(a)-(g)). Reading: the back-side
re-wiring is the same plated re-wiring, run down into blind holes from the front (uncaptioned 5(a)-(c));
the back polish thins the wafer until those via ends appear at the back (Holes.revealed_by). So:
- no resin seal over the exposed seed/barrier film (it would short every post and line);
- the back is polished only once the front is sealed (the seal carries the thinned wafer);
- the back is sealed only after its polish has revealed the re-wiring;
- the back seal's opening must clear it; a face gets terminals only once it is sealed and opened.
"""

from __future__ import annotations

from sequencer.process.claim_types import ClaimCheck, claim_result
from sequencer.process.effects import resolve_um
from sequencer.process.flow import Step
from sequencer.process.stack_model import Stack, Wafer
from sequencer.process.structures.double_sided import limits as double_sided_limits

Found = list[tuple[str, str]]
FLUSH_TOL_UM = double_sided_limits().flush_tol_um  # configs/structures/double_sided.yaml


def revealed(w: Wafer) -> list[str]:
    return [h.step for h in w.holes if h.filled_by and h.revealed_by]


def revealed_by(w: Wafer) -> list[str]:
    return [h.revealed_by for h in w.holes if h.filled_by and h.revealed_by]


def _um(w: Wafer, face: str) -> str:
    seals = w.present(face, "resin_seal")
    return f"{seals[-1].thickness_um:g}" if seals else "-"


def exposure(w: Wafer, face: str) -> str | None:
    """Why terminals cannot go on this face yet (None: sealed, and the seal is open to the wiring)."""
    seals = w.present(face, "resin_seal")
    if not seals:
        return f"the {face} is not sealed with resin yet"
    if face == "front":
        if not w.present(face, "post"):
            return "there are no Cu posts on the front"
        skins = [la for la in w.present(face) if la.covers == "post"]
        skin = skins[0] if skins else None
        return f"{skin.material} {skin.role} ({skin.step}) still covers the posts" if skin else None
    seal = seals[-1]
    if seal.opened_by is None or (seal.opened_um or 0.0) < seal.thickness_um:
        depth = "not opened" if seal.opened_by is None else f"opened only {seal.opened_um:g} um deep"
        return f"the back seal ({seal.thickness_um:g} um) is {depth}"
    return None if revealed(w) else "the back polish has not reached the re-wiring"


def terminal_checks(stack: Stack, step: Step) -> Found:
    """Permissive: terminals (solder) only on a face that is sealed and opened to its wiring."""
    layer = step.effect.layer
    if layer is None or layer.role != "solder":
        return []
    face = step.face_for(layer.face)
    why = exposure(stack.wafer(step.wafer), face)
    if why is None:
        return []
    rule = "face-not-sealed" if "not sealed" in why else "terminals-exposed"
    label = stack.wafer(step.wafer).label
    return [(rule, f"{label}: no terminals on the {face} yet: {why} (Fig. 15(f)-(g))")]


def before(stack: Stack, step: Step) -> Found:
    w, e = stack.wafer(step.wafer), step.effect
    out: Found = []
    if e.layer is not None and e.layer.role == "resin_seal":
        face = step.face_for(e.layer.face)
        film = [la for la in w.present(face) if la.role in ("seed", "barrier")]
        if film:
            out.append(("exposed-metal-film", f"resin seal over the {face}'s exposed {film[0].material} "
                        f"{film[0].role} ({film[0].step}): remove the exposed metal film first (Fig. 5(f))"))
        if face == "back" and not revealed(w):
            out.append(("back-seal-order", "back sealed before the back polish has revealed the re-wiring "
                        "(Fig. 15(c) before 15(d))"))
    if e.thin is not None and not w.present("front", "resin_seal"):
        out.append(("back-polish-order", "back polished before the front is sealed: the resin seal carries "
                    "the thinned wafer (Fig. 15(a) before 15(c))"))
    if e.open_layer is not None:
        found = w.present(step.face_for(e.open_layer.face), e.open_layer.role)
        depth, _ = resolve_um(e.open_layer.depth_um, e.open_layer.nominal, step.recipe, None)
        if found and depth < found[-1].thickness_um:
            out.append(("seal-opening-depth", f"opening {depth:g} um into the {found[-1].thickness_um:g} um "
                        f"{found[-1].material} {found[-1].role}: the re-wiring stays covered (Fig. 15(e))"))
    return out


def _seq(stack: Stack, uid: str | None) -> int:
    seq = stack.seq_of(uid) if uid else None
    return -1 if seq is None else seq


def claims(stack: Stack) -> list[ClaimCheck]:
    """Seed 004's structure on every wafer (numbered as the captions' stages; the seed has no claims)."""
    c1: list[str] = []
    c2: list[str] = []
    c3: list[str] = []
    c4: list[str] = []
    c5: list[str] = []
    for w in stack.wafers:
        at = f"{w.label}:"
        c1 += [f"{at} no Cu {role} on the front" for role in ("rewiring", "post")
               if not [la for la in w.present("front", role) if la.material.startswith("Cu")]]
        c1 += [f"{at} exposed {la.material} {la.role} ({la.step}) left on the front"
               for la in w.present("front") if la.role in ("seed", "barrier")]
        front = exposure(w, "front")
        c2 += [f"{at} {front}"] if front else []
        seals, posts = w.present("front", "resin_seal"), w.present("front", "post")
        top = max((p.thickness_um for p in posts), default=None)
        if seals and top is not None and abs(seals[-1].thickness_um - top) > FLUSH_TOL_UM:
            c2.append(f"{at} posts {top:g} um not flush with the {seals[-1].thickness_um:g} um seal")
        back = exposure(w, "back")
        c3 += [f"{at} {back}"] if back else []
        c4 += [f"{at} no terminals on the {face}" for face in ("front", "back")
               if not w.present(face, "solder")]
        c5 += _order(stack, w)
    return [
        claim_result(1, "Fig. 5(d)-(f): Cu re-wiring and Cu posts on the front, exposed metal film removed",
                     c1, "re-wiring and posts of Cu; no seed or barrier left exposed"),
        claim_result(2, "Fig. 15(a)-(b): front resin seal polished flush, posts exposed through it", c2,
                     "; ".join(f"{w.label}: posts flush with the {_um(w, 'front')} um front seal"
                               for w in stack.wafers)),
        claim_result(3, "Fig. 15(c)-(e): back polished to the re-wiring, sealed, the seal opened there",
                     c3, "; ".join(f"{w.label}: {w.thickness_um:g} um thin, re-wiring revealed by "
                                   f"{', '.join(sorted(set(revealed_by(w))))}, {_um(w, 'back')} um back seal "
                                   "opened" for w in stack.wafers)),
        claim_result(4, "Fig. 15(f)-(g): terminals on both faces", c4, "solder terminals front and back"),
        claim_result(5, "order: front sealed before the back polish, back sealed after it, each face sealed "
                     "and opened before its terminals", c5, "in caption order"),
    ]


def _order(stack: Stack, w: Wafer) -> list[str]:
    front, back = w.present("front", "resin_seal"), w.present("back", "resin_seal")
    thins = [h.seq for h in stack.history if h.step in w.thinned_by]
    out: list[str] = []
    if front and thins and front[0].seq > min(thins):
        out.append(f"{w.label}: back polished before the front seal")
    if back and thins and back[-1].seq < max(thins):
        out.append(f"{w.label}: back sealed before its polish")
    for face, seals in (("front", front), ("back", back)):
        opened = max((_seq(stack, la.last_step) for la in seals), default=-1)
        out += [f"{w.label}: {face} terminals {la.step} before the {face} was sealed and opened"
                for la in w.present(face, "solder") if not seals or la.seq < opened]
    return out
