"""`waferline sim up`: start a line's emulators, write the endpoints file, serve until signalled."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path

import typer
from rich.table import Table

from drivers.errors import ConfigError, WaferlineError
from drivers.line import Endpoints
from sim_tools.line import EmulatedLine
from waferline.common import (
    DEFAULT_LINE,
    console,
    default_endpoints_file,
    err_console,
    load_line_or_exit,
)

app = typer.Typer(no_args_is_help=True)


def endpoints_table(endpoints: Endpoints) -> Table:
    table = Table(title=f"line {endpoints.line} (time scale {endpoints.time_scale:g})")
    for col in ("tool", "kind", "transport", "profile", "address"):
        table.add_column(col)
    for e in endpoints.tools:
        addr = e.address.model_dump(exclude={"transport"}, exclude_none=True)
        table.add_row(e.name, e.kind, e.transport, e.profile,
                      " ".join(f"{k}={v}" for k, v in addr.items()))
    return table


async def _serve(line_name: str, endpoints_file: Path, run_dir: Path | None) -> None:
    config = load_line_or_exit(line_name)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    line = EmulatedLine(config, run_dir=run_dir)
    try:
        endpoints = await line.start()
        endpoints_file.parent.mkdir(parents=True, exist_ok=True)
        endpoints.write(endpoints_file)
        console.print(endpoints_table(endpoints))
        console.print(f"endpoints written to {endpoints_file}; Ctrl-C or SIGTERM stops the line")
        await stop.wait()
    finally:
        await line.stop()
        with contextlib.suppress(FileNotFoundError):
            endpoints_file.unlink()  # noqa: ASYNC240 - one local unlink at shutdown
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    console.print("line stopped")


@app.command("up")
def up(
    line: str = typer.Option(DEFAULT_LINE, "--line", help="line name or YAML path"),
    endpoints_file: Path | None = typer.Option(None, "--endpoints-file", help="JSON to write"),
    run_dir: Path | None = typer.Option(None, "--run-dir", help="where pty links are made"),
) -> None:
    """Start every emulated tool of the line on loopback and keep serving."""
    target = endpoints_file or default_endpoints_file(line)
    try:
        asyncio.run(_serve(line, target, run_dir))
    except (ConfigError, WaferlineError) as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
