"""A stack's traveler as a cross-section picture: wafers bottom to top, each substrate with its back
layers below and front layers above, bonds, through-holes and vias, dicing lines.

Geometry and the readable height scale are in report_layers.py. Every layer is labelled on the right
with its real thickness, the step and the tool that formed it (leader lines, labels never overlap);
wafers and bonds are labelled on the left. Materials keep one colour in every picture of every run.
"""

from __future__ import annotations

import math
import zlib
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Polygon, Rectangle

from sequencer.process.traveler import Holes, Stack, Wafer
from sequencer.reports.layers import SITE_W, SITES, SUBSTRATE_H, Piece, Scale, face_pieces

MATERIALS = {
    "Si": "#a7a9ac", "Al": "#9fb8d8", "Cu": "#c8783a", "Ti": "#5d6770", "Cr": "#7e8c99", "Ni": "#8e9a8c",
    "Au": "#e2b93b", "polyimide": "#e8b54a", "epoxy": "#7dba84", "resist": "#c39bd3", "SiN": "#5dade2",
    "PSG": "#aed6f1", "SiO2": "#d6eaf8", "Pb63Sn37": "#d5d8dc", "Pb90Sn10": "#99a3a4",
    "Pb83Sn17": "#aab7b8", "Pb55Sn45": "#bfc9ca", "SnAg3.0Cu0.5": "#e5e7e9",
}
SPARE = ["#f1948a", "#82e0aa", "#f8c471", "#85c1e9", "#bb8fce", "#73c6b6", "#f0b27a", "#aab7b8"]
STATE_INK = {"PROCESSED": "#1e7b34", "ABORTED": "#c00000", "UNKNOWN": "#b35c00", "STOPPED": "#b35c00"}
WIDTH_IN, X_MIN, X_MAX = 11.0, -0.95, 2.75
HALF_CIRCLE = [(math.cos(math.pi * i / 24), math.sin(math.pi * i / 24)) for i in range(25)]
PITCH_IN = 0.2  # inches between two label lines
DPI = 110


def material_colour(material: str) -> str:
    """A fixed colour per material; an unknown material gets a stable one from its name."""
    return MATERIALS.get(material) or SPARE[zlib.crc32(material.encode()) % len(SPARE)]


def _um(value: float) -> str:
    return f"{value:.3g}" if value < 10 else f"{value:.1f}" if value < 100 else f"{value:.0f}"


def _spread(targets: list[float], gap: float, lo: float, hi: float) -> list[float]:
    """Label positions near their targets, at least `gap` apart, inside [lo, hi] where possible."""
    order = sorted(range(len(targets)), key=lambda i: targets[i])
    pos = [targets[i] for i in order]
    for i in range(1, len(pos)):
        pos[i] = max(pos[i], pos[i - 1] + gap)
    if pos and pos[-1] > hi:
        pos[-1] = hi
        for i in range(len(pos) - 2, -1, -1):
            pos[i] = min(pos[i], pos[i + 1] - gap)
    out = [0.0] * len(targets)
    for i, p in zip(order, pos, strict=True):
        out[i] = max(p, lo) if lo <= hi else p
    return out


class _Sketch:
    """Collects shapes and labels in drawing units, then renders them on one figure."""

    def __init__(self) -> None:
        self.shapes: list[tuple[Any, dict[str, Any]]] = []
        self.right: list[tuple[float, str, str]] = []  # target y, text, ink
        self.left: list[tuple[float, str, str, bool]] = []  # target y, text, ink, bold
        self.top = 0.0
        self.insulating_at_sites: dict[int, float] = {}  # wafer -> y of its insulating layer's bottom

    def rect(self, x0: float, x1: float, y0: float, y1: float, **style: Any) -> None:
        lo, hi = min(y0, y1), max(y0, y1)
        self.shapes.append((Rectangle((x0, lo), x1 - x0, hi - lo), style))

    def face(self, wafer: Wafer, face: str, origin: float, up: bool, alpha: float) -> float:
        """Draw one face outward from `origin`, upward or downward; return its height."""
        pieces = face_pieces(wafer, face)
        scale, sign = Scale(pieces), 1.0 if up else -1.0
        labelled: dict[int, float] = {}
        for p in pieces:
            y0, y1 = origin + sign * scale(p.z0), origin + sign * scale(p.z1)
            colour = material_colour(p.layer.material)
            for x0, x1 in p.xs:
                self._piece(p, x0, x1, y0, y1, colour, alpha)
            if p.layer.role == "insulating" and p.shape == "cover":
                self.insulating_at_sites[wafer.index] = y0
            if id(p.layer) not in labelled or p.shape == "band":
                labelled[id(p.layer)] = (y0 + y1) / 2
        for p in pieces:
            y = labelled.pop(id(p.layer), None)
            if y is not None:
                self.right.append((y, _layer_text(p), "#222222"))
        return scale.height

    def _piece(self, p: Piece, x0: float, x1: float, y0: float, y1: float, colour: str, alpha: float) -> None:
        """Features (pads, lines, posts, terminals, balls) over the resins that bury them, as a section
        through the feature columns shows them; a resin's cover over a feature has no outline."""
        style = {"facecolor": colour, "edgecolor": "#444444", "lw": 0.4, "alpha": alpha, "zorder": 1}
        if p.shape == "cover":
            style.update(lw=0.0)
        elif p.shape != "band":
            style.update(zorder=2, lw=0.5)
        cx, w = (x0 + x1) / 2, x1 - x0
        if p.shape == "dome":
            pts = [(cx + w * 0.85 * c, y0 + (y1 - y0) * s) for c, s in HALF_CIRCLE]
        elif p.shape == "taper":
            pts = [(cx - w * 0.75, y0), (cx + w * 0.75, y0), (cx + w * 0.45, y1), (cx - w * 0.45, y1)]
        else:
            self.rect(x0, x1, y0, y1, **style)
            return
        self.shapes.append((Polygon(pts, closed=True), style))

    def substrate(self, wafer: Wafer, y0: float, alpha: float, loose: bool) -> None:
        y1 = y0 + SUBSTRATE_H
        self.rect(0.0, 1.0, y0, y1, facecolor=material_colour(wafer.material), edgecolor="#444444", lw=0.6,
                  alpha=alpha, zorder=1)
        mid = (y0 + y1) / 2  # the break: this substrate is not drawn to scale
        zig = [(x / 20, mid + (0.05 if i % 2 else -0.05)) for i, x in enumerate(range(21))]
        self.shapes.append((Polygon([*zig, *[(x, y + 0.09) for x, y in reversed(zig)]], closed=True),
                            {"facecolor": "white", "edgecolor": "#777777", "lw": 0.5, "zorder": 1}))
        for holes in wafer.holes:
            self._holes(wafer, holes, y0, y1)
        self.right.append((mid + 0.3, f"{wafer.material} substrate {_um(wafer.thickness_um)} µm, "
                                      f"{wafer.diameter_mm} mm (not to scale)", "#222222"))
        state = str(wafer.state)
        if loose:
            state = "not bonded yet" + ("" if state == "NEEDS_PROCESSING" else f", {state}")
        name = getattr(wafer, "name", "")  # Flow D names its members (carrier1, chip1, ...)
        self.left.append((mid + 0.1, f"W{wafer.index} {name}".strip(), "#111111", True))
        self.left.append((mid - 0.25, state, STATE_INK.get(str(wafer.state), "#555555"), False))

    def _holes(self, wafer: Wafer, holes: Holes, y0: float, y1: float) -> None:
        bottom = self.insulating_at_sites.get(wafer.index - 1, y0) if holes.opened_by else y0
        w = SITE_W * 0.55
        for c in SITES:
            if holes.lined_by:
                self.rect(c - w / 2 - 0.012, c + w / 2 + 0.012, y0, y1, lw=0, zorder=3,
                          facecolor=material_colour("polyimide"))
            if holes.filled_by:
                self.rect(c - w / 2, c + w / 2, bottom, y1, facecolor=material_colour("Cu"),
                          edgecolor="#6e3b12", lw=0.5, zorder=3)
            else:
                self.rect(c - w / 2, c + w / 2, bottom, y1, facecolor="white", edgecolor="#333333", lw=0.6,
                          ls="--", zorder=3)
        what = (f"Cu via electrodes {_um(holes.depth_um)} µm, filled {holes.filled_by}" if holes.filled_by
                else f"through-holes {_um(holes.depth_um)} µm ({holes.step}), not filled")
        done = [f"lined {holes.lined_by}" if holes.lined_by else "", f"opened {holes.opened_by}"
                if holes.opened_by else ""]
        extra = ", ".join(x for x in done if x)
        self.right.append(((y0 + y1) / 2 - 0.3, what + (f"; {extra}" if extra else ""), "#6e3b12"))

    def bond(self, stack: Stack, below: int, above: int, y: float) -> None:
        for b in stack.bonds:
            if {b.lower, b.upper} == {below, above}:
                through = f"{b.through} {_um(b.through_um or 0)} µm" if b.through else "nothing"
                self.rect(-0.05, 0.0, y - 0.015, y + 0.015, facecolor="#222222", zorder=3)
                self.left.append((y, f"bond {b.step} ({b.tool}): W{b.upper} {b.upper_face} onto W{b.lower} "
                                     f"{b.lower_face}\nthrough {through}", "#333333", False))


def _layer_text(p: Piece) -> str:
    la = p.layer
    made = "as loaded" if la.tool == "-" else f"{la.step} on {la.tool}"
    changed = f", last {la.last_step}" if la.last_step and la.last_step != la.step else ""
    nominal = "" if la.measured or la.tool == "-" else " (nominal)"
    return f"{la.material} {la.role.replace('_', ' ')} {_um(la.thickness_um)} µm{nominal} - {made}{changed}"


def _facing_down(stack: Stack, below: Wafer | None, wafer: Wafer) -> str:
    """The face of `wafer` that faces the member drawn under it: "back" in a stack bonded front to back,
    "front" for a flip-chip member (its front, bumps and all, is drawn downward)."""
    if below is None:
        return "back"
    for b in stack.bonds:
        if (b.lower, b.upper) == (below.index, wafer.index):
            return b.upper_face
        if (b.lower, b.upper) == (wafer.index, below.index):
            return b.lower_face
    return "back"


def draw_cross_section(stack: Stack, title: str, path: Path) -> Path:
    """Render one stack's traveler; wafers not yet in the stack are drawn faded above it."""
    sk, y, top = _Sketch(), 0.0, 0.0
    ordered = [w for w in stack.wafers if w.in_stack] + [w for w in stack.wafers if not w.in_stack]
    below: Wafer | None = None
    for w in ordered:
        loose = not w.in_stack
        if loose and below is not None:
            y += 0.8  # a gap: this wafer is not bonded to anything yet
        alpha = 0.45 if loose else 1.0
        down = _facing_down(stack, None if loose else below, w)
        up = "front" if down == "back" else "back"
        base = y + Scale(face_pieces(w, down)).height
        sk.face(w, down, base, False, alpha)
        if below is not None and not loose:
            sk.bond(stack, below.index, w.index, y)
        sk.substrate(w, base, alpha, loose)
        y = base + SUBSTRATE_H + sk.face(w, up, base + SUBSTRATE_H, True, alpha)
        top = y if not loose else top
        below = w
    if stack.diced:
        for x in (0.33, 0.67):
            sk.rect(x - 0.002, x + 0.002, 0.0, top, facecolor="#c00000", lw=0, zorder=4)
        cut = f"diced through every wafer along the red lines: {stack.diced_by}"
        sk.right.append((top + 0.1, cut, "#c00000"))
    return _render(sk, max(y, top) + 0.3, title, path)


def _render(sk: _Sketch, height: float, title: str, path: Path) -> Path:
    per_unit = max(0.5, len(sk.right) * PITCH_IN / max(height, 1.0), len(sk.left) * PITCH_IN * 1.6 / height)
    fig_h = height * per_unit + 1.0
    fig = Figure(figsize=(WIDTH_IN, fig_h), dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.0, 0.2 / fig_h, 1.0, height * per_unit / fig_h))
    ax.set_xlim(X_MIN, X_MAX)
    ax.set_ylim(-0.15, height)
    ax.set_axis_off()
    for shape, style in sk.shapes:
        shape.set(**style)
        ax.add_patch(shape)
    gap = PITCH_IN / per_unit
    for (target, text, ink), pos in zip(sk.right, _spread([r[0] for r in sk.right], gap, 0.0, height),
                                        strict=True):
        ax.plot([1.01, 1.06, 1.1], [target, pos, pos], color="#999999", lw=0.5)
        ax.text(1.12, pos, text, va="center", ha="left", fontsize=7.5, color=ink)
    for (_target, text, ink, bold), pos in zip(sk.left, _spread([r[0] for r in sk.left], gap * 1.6, 0.0,
                                                                height), strict=True):
        ax.text(-0.07, pos, text, va="center", ha="right", fontsize=10 if bold else 7.5, color=ink,
                fontweight="bold" if bold else "normal")
    fig.text(0.01, 1 - 0.3 / fig_h, title, fontsize=11, va="center")
    fig.text(0.01, 1 - 0.6 / fig_h, "schematic cross-section, bottom to top. Heights are not to scale: every "
             "slice grows with log(thickness) and substrates are broken; real thicknesses are in the labels. "
             "Removed layers are omitted.", fontsize=7.5, color="#555555", va="center")
    fig.savefig(path, dpi=DPI)
    return path
