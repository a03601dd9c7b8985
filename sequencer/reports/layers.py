"""Cross-section geometry of one wafer face from its traveler layers, and the readable height scale.

Layers are 0.1-300 um on 50-725 um wafers, so a true-scale drawing shows nothing but silicon. Each
face is modelled in real micrometres with two tracks - the feature SITES (pads, vias, posts,
terminals) and the FIELD between them - so that buried features stay buried: a resin fills the field
and covers a feature only where the feature is lower than the resin's top, a patterned film leaves
the sites open, a solder ball sits on its post. The real heights are then mapped to drawing units
piecewise (`Scale`): every slice between two layer boundaries gets a height that grows with the log of
its thickness, so a 0.1 um seed and a 75 um resin are both visible and their order is true. The real
thickness is always printed in the label.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Literal

from sequencer.process.traveler import Layer, Wafer

Shape = Literal["band", "cover", "sites", "trace", "dome", "taper"]
SITES = (0.16, 0.5, 0.84)  # feature columns, as a fraction of the drawn width
SITE_W = 0.07
TRACE_W = 0.22  # a re-wiring line around each site
SITE_ROLES = ("pad", "post", "post_barrier", "first_terminal", "ball_pad")
TAPER_ROLES = ("first_terminal",)  # seed 002: a tapered, hemispherical-topped terminal
DOME_ROLES = ("solder", "second_terminal", "bump")
TRACE_ROLES = ("rewiring",)
FILM_ROLES = ("seed", "barrier", "passivation", "heat_radiation")  # thin and conformal
FILL_ROLES = ("insulating", "resist", "resin_seal", "first_resin", "second_resin", "protective_film",
              "adhesive", "encapsulant")
OPEN_AT_SITES = ("first_resin",)  # printed with the terminal sites open (seed 002, C2)
SKIP_ROLES = ("via_electrode",)  # drawn inside the wafer's through-holes instead


@dataclass
class Piece:
    """One drawn piece of a layer: real z (um, outward from the substrate face) over x intervals."""

    layer: Layer
    shape: Shape
    z0: float
    z1: float
    xs: list[tuple[float, float]]


def site_xs() -> list[tuple[float, float]]:
    return [(c - SITE_W / 2, c + SITE_W / 2) for c in SITES]


def _field_xs(open_sites: bool) -> list[tuple[float, float]]:
    if not open_sites:
        return [(0.0, 1.0)]
    edges = [0.0, *(x for pair in site_xs() for x in pair), 1.0]
    return [(edges[i], edges[i + 1]) for i in range(0, len(edges), 2)]


def face_pieces(wafer: Wafer, face: str) -> list[Piece]:
    """The present layers of one face as pieces, in formation order (removed layers are omitted)."""
    zs = zf = 0.0  # top of the sites, top of the field
    out: list[Piece] = []
    for la in wafer.present(face):
        t, role = max(la.thickness_um, 0.0), la.role
        if role in SKIP_ROLES:
            continue
        if role in SITE_ROLES or role in DOME_ROLES:
            shape: Shape = "dome" if role in DOME_ROLES else "taper" if role in TAPER_ROLES else "sites"
            out.append(Piece(la, shape, zs, zs + t, site_xs()))
            zs += t
        elif role in TRACE_ROLES:
            base = max(zs, zf)
            lines = [(c - TRACE_W / 2, c + TRACE_W / 2) for c in SITES]
            out.append(Piece(la, "trace", base, base + t, lines))
            if zs < base:  # the line fills the opening in the film below it, down to the pad
                out.append(Piece(la, "trace", zs, base, site_xs()))
            zs = base + t
        else:
            fill = role in FILL_ROLES or (role not in FILM_ROLES and t >= 2)
            opened = role in OPEN_AT_SITES or la.patterned  # a patterned film or resist: sites left open
            top = zf + t
            flat = not fill and not opened and abs(zs - zf) < 1e-9  # a film on a flat face: one band
            out.append(Piece(la, "band", zf, top, _field_xs(opened or (not fill and not flat))))
            if flat:
                zs = zf = top
                continue
            if not opened:
                if fill and zs < top:  # the resin buries the features below its top
                    out.append(Piece(la, "cover", zs, top, site_xs()))
                    zs = top
                elif not fill:  # a conformal film also coats the top of every feature
                    out.append(Piece(la, "cover", zs, zs + t, site_xs()))
                    zs += t
            zf = top
    return out


def slice_height(um: float) -> float:
    """Drawing units for a slice `um` thick: at least 0.14, growing with log10 of the thickness."""
    return 0.14 + 0.24 * math.log10(1.0 + max(um, 0.0))


class Scale:
    """Real z (um) -> drawing units for one face: piecewise linear through every layer boundary."""

    def __init__(self, pieces: list[Piece]) -> None:
        cuts = sorted({0.0, *(p.z0 for p in pieces), *(p.z1 for p in pieces)})
        merged = [cuts[0]]
        for z in cuts[1:]:
            if z - merged[-1] > 1e-6:
                merged.append(z)
        self.cuts = merged
        self.ys = [0.0]
        for a, b in itertools.pairwise(merged):
            self.ys.append(self.ys[-1] + slice_height(b - a))

    @property
    def height(self) -> float:
        return self.ys[-1]

    def __call__(self, z: float) -> float:
        for i in range(1, len(self.cuts)):
            if z <= self.cuts[i] + 1e-9:
                a, b = self.cuts[i - 1], self.cuts[i]
                return self.ys[i - 1] + (self.ys[i] - self.ys[i - 1]) * ((z - a) / (b - a) if b > a else 0.0)
        return self.ys[-1]


SUBSTRATE_H = 1.5  # drawing units of every substrate, drawn broken: 50 and 725 um look alike on purpose
