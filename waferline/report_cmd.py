"""`waferline report RUN_ID`: (re)write a run's report from its directory and summarise it.

The report needs nothing but the run directory (journal, traveler.json, summary.json), so it works on
a finished run, a HELD or ABORTED one, one still running, and one copied off the fab floor.
"""

from __future__ import annotations

import typer
from rich.table import Table

from drivers.errors import WaferlineError
from sequencer.reports.accounting import HOUR
from sequencer.reports.data import RunData, load_run
from sequencer.reports.write import ReportFiles, render_report
from sequencer.run.chain import TAMPERED_EXIT, JournalTampered
from sequencer.run.journal import require_intact
from sequencer.run.rundir import JOURNAL, run_dir
from waferline.common import console, err_console


def _tools_table(data: RunData) -> Table:
    acc = data.accounting
    window = acc.window.tool / HOUR
    table = Table(title=f"run {data.run_id}: {data.state} - tool hours over a {window:.1f} h window")
    table.caption = "tool hours: E10 productive/standby/down, E116 busy/idle/blocked"
    for name in ("tool", "kind", "jobs", "E10 P/S/D", "E116 B/I/Bl", "util"):
        table.add_column(name, justify="left" if name in ("tool", "kind") else "right", no_wrap=True)
    for t in acc.tools:
        e10 = "/".join(f"{s.tool / HOUR:.1f}" for s in (t.productive, t.standby, t.down))
        e116 = "/".join(f"{s.tool / HOUR:.1f}" for s in (t.busy, t.idle, t.blocked))
        util = f"{t.utilization:.0%}"
        if acc.bottleneck == t.kind:
            util = f"[bold]{util}[/bold]"
        table.add_row(t.tool, t.kind, str(t.jobs), e10, e116, util)
    return table


def _claims_table(data: RunData) -> Table:
    table = Table(title="claims check")
    for name in ("stack", "completed", "claims", "detail"):
        table.add_column(name)
    for view in data.stacks:
        if not view.claims:
            verdict = "[yellow]not checked[/yellow]"
        elif view.claims_ok:
            verdict = f"[green]{len(view.claims)} ok[/green]"
        else:
            verdict = "[red]FAILED[/red]"
        failed = "; ".join(f"claim {c.claim}: {c.detail}" for c in view.claims if not c.ok)
        table.add_row(view.short, "yes" if view.completed else "no", verdict, failed)
    return table


def _print(data: RunData, files: ReportFiles) -> None:
    acc = data.accounting
    console.print(_tools_table(data))
    if acc.bound_per_hour is not None and acc.ratio is not None:
        console.print(f"throughput {acc.throughput_per_hour:.4f} stacks/tool-h, bottleneck {acc.bottleneck} "
                      f"bound {acc.bound_per_hour:.4f} stacks/tool-h: [bold]{acc.ratio:.0%}[/bold] of it "
                      f"({len(acc.stacks_completed)} of {len(acc.stacks)} stack(s) completed, makespan "
                      f"{acc.makespan.tool / HOUR:.1f} tool h)")
    else:
        console.print(f"no stack completed ({data.state}): no throughput bound")
    if data.held_reason:
        console.print(f"[red]held: {data.held_reason}[/red]")
    console.print(_claims_table(data))
    names = [files.gantt_png.name, *(p.name for p in files.travelers.values()), files.report_json.name]
    console.print(f"report: {files.index_html}", soft_wrap=True, highlight=False)  # paths stay whole
    console.print(f"also in {files.directory}: {', '.join(names)}", soft_wrap=True, highlight=False)


def report(
    run_id: str = typer.Argument(..., help="the run's id, e.g. 20261122-061530-a3f9"),
    open_path: bool = typer.Option(False, "--open-path",
                                   help="print only the path of index.html, e.g. for xdg-open $(...)"),
) -> None:
    """Write a run's report (Gantt, cross-sections, E10/E116, bottleneck bound, claims) and summarise it."""
    try:
        directory = run_dir(run_id)
        require_intact(directory / JOURNAL)  # a report of a rewritten journal would lie
        data = load_run(directory)
        files = render_report(data)
    except JournalTampered as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(TAMPERED_EXIT) from None
    except WaferlineError as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    if open_path:
        typer.echo(str(files.index_html.resolve()))
        return
    _print(data, files)
