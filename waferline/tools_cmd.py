"""`waferline tools status`: connect each tool's driver and print its E30 status."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from drivers.errors import WaferlineError
from drivers.factory import make_tool
from drivers.line import Endpoints, LineConfig, apply_endpoints
from drivers.tool import ToolStatus
from waferline.common import (
    DEFAULT_LINE,
    console,
    default_endpoints_file,
    err_console,
    load_line_or_exit,
)

app = typer.Typer(no_args_is_help=True)


async def query_line(line: LineConfig) -> list[dict[str, Any]]:
    """Status of every tool, concurrently; a tool that fails is reported, not fatal."""

    async def one(cfg: Any) -> dict[str, Any]:
        entry: dict[str, Any] = {"name": cfg.name, "kind": cfg.kind,
                                 "transport": cfg.address.transport}
        tool = make_tool(cfg, line)
        try:
            async with tool:
                status: ToolStatus = await tool.status()
            entry.update(ok=True, status=status.model_dump(mode="json"))
        except WaferlineError as exc:
            entry.update(ok=False, error=f"{type(exc).__name__}: {exc}")
        return entry

    return list(await asyncio.gather(*(one(cfg) for cfg in line.tools)))


async def _status(line: LineConfig, endpoints: Endpoints | None) -> tuple[list[dict[str, Any]], str]:
    if endpoints is not None:
        return await query_line(apply_endpoints(line, endpoints)), "endpoints file"
    if not any(t.emulated for t in line.tools):
        return await query_line(line), "configured addresses"
    from sim_tools.line import EmulatedLine  # embedded line: the CLI's emulated-line wiring

    async with EmulatedLine(line) as emulated:
        assert emulated.endpoints is not None
        return await query_line(apply_endpoints(line, emulated.endpoints)), "embedded emulators"


def _pid_alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def status_table(rows: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=title)
    for col in ("tool", "kind", "transport", "state", "alarm", "interlocks", "last job", "values"):
        table.add_column(col)
    for r in rows:
        if not r["ok"]:
            table.add_row(r["name"], r["kind"], r["transport"], "[red]UNREACHABLE[/red]",
                          r["error"], "", "", "")
            continue
        s = r["status"]
        alarm = f"[red]{s['alarm']['id']} {s['alarm']['text']}[/red]" if s["alarm"] else "-"
        locks = " ".join(f"{k}={'ok' if v else '[red]OPEN[/red]'}" for k, v in s["interlocks"].items())
        vals = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                        for k, v in s["values"].items())
        table.add_row(r["name"], r["kind"], r["transport"], s["state"], alarm, locks,
                      f"{s['job_id']} {s['job_outcome']}", vals)
    return table


@app.command("status")
def status(
    line: str = typer.Option(DEFAULT_LINE, "--line", help="line name or YAML path"),
    endpoints: Path | None = typer.Option(
        None, "--endpoints", help="endpoints JSON from `sim up` (default: the line's, if running)"
    ),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
) -> None:
    """Connect every tool of the line and print its status. Exit 1 if any is unreachable.

    Without a running `sim up`, the line's emulated tools are started in-process for the query.
    """
    config = load_line_or_exit(line)
    live: Endpoints | None = None
    path = endpoints or default_endpoints_file(line)
    if endpoints is not None or path.exists():
        try:
            live = Endpoints.read(path)
        except WaferlineError as exc:
            err_console.print(f"[red]{exc}[/red]")
            raise typer.Exit(2) from None
        if endpoints is None and not _pid_alive(live.pid):
            live = None  # a stale file from a line that is gone
    rows, source = asyncio.run(_status(config, live))
    if as_json:
        print(json.dumps({"line": config.name, "source": source, "tools": rows}, indent=2))
    else:
        console.print(status_table(rows, f"line {config.name} ({source})"))
    if not all(r["ok"] for r in rows):
        raise typer.Exit(1)
