"""`waferline verify RUN_ID`: prove a run's journal untouched - its hash chain and seq continuity.

Exit 0 when intact, 6 when broken (each rewritten, deleted or inserted event is named by its seq),
2 when there is no such run or no readable journal. `report` and `resume` make the same check.
"""

from __future__ import annotations

import json

import typer

from drivers.errors import WaferlineError
from sequencer.run.chain import TAMPERED_EXIT
from sequencer.run.journal import verify_journal
from sequencer.run.rundir import JOURNAL, SUMMARY, run_dir
from waferline.common import console, err_console


def verify(run_id: str = typer.Argument(..., help="the run's id, e.g. 20261122-061530-a3f9")) -> None:
    """Check a run's journal: every event's hash chain, no gap in seq, and the head the summary recorded."""
    try:
        directory = run_dir(run_id)
        report = verify_journal(directory / JOURNAL)
    except WaferlineError as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    problems = list(report.problems)
    recorded = _recorded_head(directory / SUMMARY)
    if recorded is not None and report.ok and (why := report.check_head(*recorded)) is not None:
        problems.append(f"summary.json: {why}")
    if problems:
        for p in problems:
            err_console.print(f"[red]{p}[/red]")
        err_console.print(f"[red]run {run_id}: journal BROKEN ({len(problems)} problem(s))[/red]")
        raise typer.Exit(TAMPERED_EXIT)
    old = f"; {report.unchained} event(s) from before the chain" if report.unchained else ""
    console.print(f"run {run_id}: journal intact, {report.events} events, head seq {report.head_seq} "
                  f"{report.head[:16]}{old}")


def _recorded_head(summary: object) -> tuple[int, str] | None:
    try:
        head = json.loads(summary.read_text()).get("journal_head")  # type: ignore[attr-defined]
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(head, dict) or "seq" not in head or "hash" not in head:
        return None
    return int(head["seq"]), str(head["hash"])
