"""The run page's pictures, drawn by the report's own code (sequencer/reports): the Gantt so far, holds
shown, and each stack's traveler cross-section. Drawn at most once per journal change and cached in
the HMI's state directory, so many browsers watching one run cost one drawing."""

from __future__ import annotations

import threading
from pathlib import Path

from sequencer.reports.data import load_run
from sequencer.reports.gantt import draw_gantt
from sequencer.reports.xsection import draw_cross_section
from sequencer.run.rundir import list_runs, runs_dir
from waferline.hmi.stamps import journal_stamp

_LOCK = threading.Lock()  # matplotlib's pyplot is not thread-safe


def picture(cache: Path, run_id: str, what: str) -> Path | None:
    """`gantt` or `xsection-<stack short id>` of a run as a PNG path; None if there is none."""
    if run_id not in list_runs():
        return None
    directory = runs_dir() / run_id
    stamp = journal_stamp(run_id)
    if not stamp:
        return None
    cache.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = cache / f"{run_id}-{what}-{stamp}.png"
    if path.exists():
        return path
    with _LOCK:
        data = load_run(directory)
        if what == "gantt":
            drawn = draw_gantt(data, path)
        else:
            short = what.removeprefix("xsection-")
            stack = next((s for s in data.stacks if s.short == short and s.traveler is not None), None)
            if stack is None or stack.traveler is None:
                return None
            drawn = draw_cross_section(stack.traveler, f"{run_id} {short}", path)
    for old in cache.glob(f"{run_id}-{what}-*.png"):  # earlier drawings of this picture
        if old != drawn:
            old.unlink(missing_ok=True)
    return drawn

