"""`write_report(run_dir)`: a run's report from its directory alone, into <run_dir>/report/.

gantt.png (tool lanes), traveler-<stack>.png (one cross-section per stack with a traveler), index.html
(everything, self-contained) and report.json (the numbers). Works on a finished run, a HELD or ABORTED
one (partial travelers, failed jobs) and on a run still being written (it reads the journal without a
lock). Pure files in, files out: safe to call at the end of every run, and again any time later.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from pathlib import Path

from pydantic import BaseModel

from sequencer.reports.data import RunData, load_run
from sequencer.reports.gantt import draw_gantt
from sequencer.reports.html import build_html
from sequencer.reports.xsection import draw_cross_section

log = logging.getLogger(__name__)

REPORT_DIR = "report"


class ReportFiles(BaseModel):
    directory: Path
    index_html: Path
    gantt_png: Path
    report_json: Path
    travelers: dict[str, Path]  # stack id -> its cross-section PNG


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def report_json(data: RunData, files: ReportFiles) -> dict[str, object]:
    acc = data.accounting
    return {
        "run_id": data.run_id, "flow": data.flow, "line": data.line, "state": data.state,
        "held_reason": data.held_reason, "wafers": data.wafers, "steps": data.steps,
        "stacks": [{"stack_id": s.stack_id, "completed": s.completed, "claims_ok": s.claims_ok,
                    "claims": [c.model_dump() for c in s.claims], "traveler": s.traveler is not None}
                   for s in data.stacks],
        "throughput_per_hour": acc.throughput_per_hour, "bound_per_hour": acc.bound_per_hour,
        "bottleneck": acc.bottleneck, "ratio": acc.ratio,
        "accounting": acc.model_dump(mode="json"),
        "history": [r.model_dump() for r in data.history],
        "files": {"index_html": files.index_html.name, "gantt_png": files.gantt_png.name,
                  "travelers": {k: v.name for k, v in files.travelers.items()}},
    }


def write_report(run_dir: Path) -> ReportFiles:
    """Write the report files; raises JournalError if the directory has no readable journal."""
    return render_report(load_run(Path(run_dir)))


def render_report(data: RunData) -> ReportFiles:
    """Write the report of already loaded run data into <run dir>/report/."""
    out = data.directory / REPORT_DIR
    out.mkdir(exist_ok=True)
    gantt = draw_gantt(data, out / "gantt.png")
    travelers: dict[str, Path] = {}
    for view in data.stacks:
        if view.traveler is not None:
            members = view.traveler.wafers
            size = (f"members {', '.join(w.name or str(w.index) for w in members)}"
                    if any(w.form != "wafer" for w in members) else f"{len(members)} wafer(s)")
            title = f"traveler {view.short} - {view.stack_id} - {data.flow}, {size}"
            travelers[view.stack_id] = draw_cross_section(view.traveler, title,
                                                          out / f"traveler-{_safe(view.short)}.png")
    files = ReportFiles(directory=out, index_html=out / "index.html", gantt_png=gantt,
                        report_json=out / "report.json", travelers=travelers)
    files.index_html.write_text(build_html(data, gantt, travelers))
    files.report_json.write_text(json.dumps(report_json(data, files), indent=2))
    return files


async def file_report(directory: Path) -> None:
    """The run's report (Gantt, cross-sections, utilization, history, claims) in <run>/report/.
    Rendering takes 0.2-3 s of CPU: in a thread, and a report that fails never fails the run."""
    try:
        await asyncio.to_thread(write_report, directory)
    except Exception as exc:  # the run's record is the journal; the report can be rewritten from it
        log.error("report for %s not written: %s (`waferline report %s` retries)", directory.name, exc,
                  directory.name)
