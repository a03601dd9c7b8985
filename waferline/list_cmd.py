"""`waferline flows`, `waferline lines`, `waferline runs`: what can be run, and what ran and how it ended."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from drivers.configs import config_dirs, find, names
from drivers.errors import ConfigError
from drivers.validation import read_yaml
from sequencer.run.rundir import SUMMARY, list_runs, runs_dir
from waferline.common import console


def _described(kind: str) -> Table:
    table = Table(title=f"{kind} ({' > '.join(str(d) for d in config_dirs(kind))})")
    for col in ("name", "title", "file"):
        table.add_column(col)
    for name in names(kind):
        path = find(kind, name)
        try:
            data = read_yaml(path)
            title = str(data.get("title") or data.get("description") or "") if isinstance(data, dict) else ""
        except ConfigError as exc:
            title = f"[red]unreadable: {exc}[/red]"
        table.add_row(name, title.strip().splitlines()[0] if title.strip() else "", str(path))
    return table


def flows() -> None:
    """The flows `waferline run` and `check` accept, by name, and where each is read from."""
    console.print(_described("flows"))


def lines() -> None:
    """The lines `--line` accepts, by name, and where each is read from."""
    console.print(_described("lines"))


def runs(last: int = typer.Option(20, "--last", min=1, help="how many of the newest runs")) -> None:
    """The runs in the runs directory ($WAFERLINE_RUNS_DIR, default ./runs): flow, state, claims."""
    table = Table(title=f"runs in {runs_dir()}")
    for col in ("run", "flow", "stacks", "state", "claims", "held / why"):
        table.add_column(col)
    for run_id in list_runs()[-last:]:
        summary = _summary(runs_dir() / run_id / SUMMARY)
        if summary is None:
            table.add_row(run_id, "", "", "[yellow]no summary (running, or died: resume)[/yellow]", "", "")
            continue
        claims = "ok" if summary.get("claims_ok") else "[red]not ok[/red]"
        table.add_row(run_id, str(summary.get("flow", "")), str(len(summary.get("stacks") or [1])),
                      str(summary.get("state", "")), claims, str(summary.get("held_reason") or ""))
    console.print(table)


def _summary(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
