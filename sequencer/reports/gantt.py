"""The run's Gantt chart: one lane per tool, grouped by kind; a bar per process job coloured by stack.

Drawn with matplotlib's object API on the Agg canvas (no pyplot, no global state), so a report can be
written from any thread at the end of a run. x is tool hours since the run entered EXECUTE: the time
base the tools' recipes and E10 figures use, whatever the emulators' time_scale was.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from sequencer.reports.data import RunData
from sequencer.reports.timeline import Job

HOUR = 3600.0
STACK_COLOURS = ["#4e79a7", "#f28e2b", "#59a14f", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f",
                 "#bab0ac", "#86bcb6", "#8cd17d", "#a0cbe8", "#ffbe7d", "#d4a6c8", "#fabfd2", "#d7b5a6"]
BAD = ("failed", "unknown", "open", "rejected")  # drawn hatched with a red edge
MARKS: dict[str, tuple[str, str, str]] = {  # what -> (marker, colour, legend text)
    "trip": ("X", "#c00000", "interlock trip"),
    "alarm": ("X", "#c00000", "interlock trip"),
    "refused": ("v", "#d08000", "permissive refused"),
    "unknown": ("P", "#7030a0", "outcome unknown"),
}
DOWN = (0.95, 0.55, 0.53, 0.55)  # translucent red: a job paused under it stays visible
LANE_H = 0.5  # inches per tool lane
BAR = 0.72  # bar height, in lanes
DPI = 110


def stack_colour(index: int) -> str:
    return STACK_COLOURS[index % len(STACK_COLOURS)]


def _ink(fill: str) -> str:
    """Black or white text, whichever reads better on the bar's colour."""
    r, g, b = (int(fill[i:i + 2], 16) for i in (1, 3, 5))
    return "black" if 0.299 * r + 0.587 * g + 0.114 * b > 150 else "white"


def _label(ax: Any, job: Job, y: float, px_per_h: float, fill: str) -> None:
    """The step id inside its bar: horizontal if it fits, else vertical if the bar is tall and wide enough."""
    width_px = (job.end - job.start) / HOUR * px_per_h
    bar_px = BAR * LANE_H * DPI
    mid = (job.start + job.end) / 2 / HOUR
    if width_px >= 5.0 * len(job.uid) + 6:  # 7 pt DejaVu Sans at 110 dpi is about 5 px a character
        ax.text(mid, y, job.uid, ha="center", va="center", fontsize=7, color=_ink(fill), clip_on=True,
                zorder=4)
    elif width_px >= 11 and 4.6 * len(job.uid) + 4 <= bar_px:
        ax.text(mid, y, job.uid, ha="center", va="center", fontsize=6.5, rotation=90, color=_ink(fill),
                clip_on=True, zorder=4)


def draw_gantt(data: RunData, path: Path) -> Path:
    acc = data.accounting
    lanes = [(t.kind, t.tool) for t in acc.tools]
    row = {tool: i for i, (_kind, tool) in enumerate(lanes)}
    colour = {s.stack_id: stack_colour(i) for i, s in enumerate(data.stacks)}
    end_h = max([acc.window.tool / HOUR, *(j.end / HOUR for j in acc.jobs)], default=1.0) or 1.0
    height = 1.9 + LANE_H * max(len(lanes), 1)
    fig = Figure(figsize=(15, height), dpi=DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.11, 1.05 / height, 0.87, 1 - 1.55 / height))
    ax.set_xlim(0, end_h * 1.01)
    ax.set_ylim(len(lanes) - 0.5, -0.5)
    px_per_h = 0.87 * 15 * DPI / (end_h * 1.01)
    kinds = sorted({k for k, _ in lanes}, key=[k for k, _ in lanes].index)
    for n, kind in enumerate(kinds):
        rows = [i for i, (k, _) in enumerate(lanes) if k == kind]
        if n % 2 == 0:
            ax.axhspan(rows[0] - 0.5, rows[-1] + 0.5, color="#f3f3f3", zorder=0)
        ax.axhline(rows[-1] + 0.5, color="#c8c8c8", lw=0.6, zorder=1)
    for span in acc.downs:
        if span.tool in row:
            ax.barh(row[span.tool], (span.end - span.start) / HOUR, left=span.start / HOUR, height=0.92,
                    color=DOWN, hatch="xx", edgecolor="#d9534f", lw=0, zorder=3.5)  # over a paused job too
    for span in [*acc.refusals, *acc.waits]:
        if span.tool in row:
            ax.barh(row[span.tool] + 0.36, (span.end - span.start) / HOUR, left=span.start / HOUR,
                    height=0.14, color="#f0ad4e", lw=0, zorder=2)
    for hold in acc.holds:
        ax.axvspan(hold.start / HOUR, max(hold.end, hold.start + end_h * HOUR * 0.002) / HOUR,
                   color="#f5a623", alpha=0.18, zorder=1)
        ax.text(hold.start / HOUR, -0.5, " HELD", va="bottom", ha="left", fontsize=7, color="#b36b00",
                clip_on=False)
    for job in acc.jobs:
        if job.tool not in row or job.outcome == "not_started":
            continue
        y, bad = row[job.tool], job.outcome in BAD
        fill = colour.get(job.stack, "#999999")
        ax.barh(y, max(job.end - job.start, 1.0) / HOUR, left=job.start / HOUR, height=BAR, color=fill,
                edgecolor="#c00000" if bad else "#333333", lw=1.4 if bad else 0.4,
                hatch="////" if bad else None, zorder=3)
        _label(ax, job, y, px_per_h, fill)
    for mark in acc.marks:
        if mark.what in MARKS and mark.tool in row:
            marker, col, _ = MARKS[mark.what]
            ax.plot(mark.at / HOUR, row[mark.tool] - 0.38, marker=marker, color=col, ms=8, mec="white",
                    mew=0.6, zorder=5, clip_on=False)
    ax.set_yticks(range(len(lanes)))
    ax.set_yticklabels([f"{tool}  ({kind})" for kind, tool in lanes], fontsize=8)
    ax.tick_params(axis="x", labelsize=8)
    ax.grid(axis="x", color="#dddddd", lw=0.5, zorder=0)
    ax.set_axisbelow(True)
    ax.set_xlabel(f"tool hours since the run entered EXECUTE (wall seconds x time_scale {acc.time_scale:g})",
                  fontsize=8)
    ratio = f"{acc.ratio:.0%}" if acc.ratio is not None else "n/a"
    ax.set_title(f"run {data.run_id} - {data.flow}, {len(data.stacks)} stack(s) x {data.size} - "
                 f"{data.state} - makespan {acc.makespan.tool / HOUR:.1f} tool h, throughput / bound {ratio}",
                 fontsize=10, loc="left")
    _legend(fig, ax, data, colour)
    fig.savefig(path, dpi=DPI)
    return path


def _legend(fig: Figure, ax: Any, data: RunData, colour: dict[str, str]) -> None:
    acc = data.accounting
    shown = data.stacks[:12]
    handles: list[Any] = [Patch(facecolor=colour[s.stack_id], edgecolor="#333333", label=s.short)
                          for s in shown]
    if len(data.stacks) > len(shown):
        handles.append(Patch(facecolor="white", edgecolor="white", label=f"+{len(data.stacks) - len(shown)}"))
    if any(j.outcome in BAD for j in acc.jobs):
        handles.append(Patch(facecolor="white", edgecolor="#c00000", hatch="////",
                             label="failed / unknown / unresolved"))
    if acc.downs:
        handles.append(Patch(facecolor=DOWN, edgecolor="#d9534f", hatch="xx", label="tool down (E10)"))
    if acc.refusals or acc.waits:
        handles.append(Patch(facecolor="#f0ad4e", label="blocked (E116)"))
    if acc.holds:
        handles.append(Patch(facecolor="#f5a623", alpha=0.3, label="run HOLDING / HELD"))
    seen: set[str] = set()
    for mark in acc.marks:
        if mark.what in MARKS and MARKS[mark.what][2] not in seen:
            marker, col, text = MARKS[mark.what]
            seen.add(text)
            handles.append(Line2D([], [], ls="", marker=marker, color=col, ms=8, label=text))
    below = -0.48 / (fig.get_figheight() * ax.get_position().height)  # under the x label, in axes units
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.0, below),
              ncol=min(len(handles), 9), fontsize=7.5, frameon=False, title="stacks and events",
              title_fontsize=7.5, alignment="left")
