"""`waferline sim up`: start a line's emulators, write the endpoints file, serve until signalled."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from drivers.errors import ConfigError, WaferlineError
from drivers.line import Endpoints
from sim_tools.control import send
from sim_tools.faults import FaultKind
from sim_tools.line import EmulatedLine
from waferline.common import (
    DEFAULT_LINE,
    console,
    default_endpoints_file,
    err_console,
    load_line_or_exit,
)
from waferline.hmi_cmd import HMI_PORT_OPT, hmi_beside

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


async def _serve(line_name: str, endpoints_file: Path, run_dir: Path | None,
                 hmi_port: int | None = None) -> None:
    config = load_line_or_exit(line_name)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    refuse_live_endpoints(endpoints_file)
    line = EmulatedLine(config, run_dir=run_dir)
    written: Endpoints | None = None
    try:
        endpoints = await line.start()
        endpoints_file.parent.mkdir(parents=True, exist_ok=True)
        refuse_live_endpoints(endpoints_file)  # again: another line may have started meanwhile
        endpoints.write(endpoints_file)
        written = endpoints
        console.print(endpoints_table(endpoints))
        console.print(f"endpoints written to {endpoints_file}; Ctrl-C or SIGTERM stops the line")
        with hmi_beside(line_name, endpoints_file, hmi_port):
            await stop.wait()
    finally:
        await line.stop()
        if written is not None:
            remove_own_endpoints(endpoints_file, written)
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    console.print("line stopped")


def refuse_live_endpoints(path: Path) -> None:
    """Never overwrite the endpoints file of a line whose `sim up` still lives: its users would lose
    the way to its tools. A file of a dead process (or unreadable) is stale and may go."""
    try:
        pid = Endpoints.read(path).pid
    except ConfigError:
        return
    if pid is not None and pid != os.getpid() and _alive(pid):
        raise ConfigError(f"{path}: the endpoints of a line still running (sim up, pid {pid}); stop it "
                          "first, or give another --endpoints-file")


def remove_own_endpoints(path: Path, written: Endpoints) -> None:
    """Remove the endpoints file at shutdown only if it is still the one this process wrote."""
    try:
        if Endpoints.read(path).pid == written.pid == os.getpid():
            path.unlink()
    except (ConfigError, OSError):
        pass  # replaced, removed or unreadable: not ours to delete


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, as another user
    return True


@app.command("up")
def up(
    line: str = typer.Option(DEFAULT_LINE, "--line", help="line name or YAML path"),
    endpoints_file: Path | None = typer.Option(None, "--endpoints-file", help="JSON to write"),
    run_dir: Path | None = typer.Option(None, "--run-dir", help="where pty links are made"),
    hmi_port: int | None = HMI_PORT_OPT,
) -> None:
    """Start every emulated tool of the line on loopback and keep serving."""
    target = endpoints_file or default_endpoints_file(line)
    try:
        asyncio.run(_serve(line, target, run_dir, hmi_port))
    except (ConfigError, WaferlineError) as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None


def _control(line: str, endpoints: Path | None, request: dict[str, Any]) -> None:
    path = endpoints or default_endpoints_file(line)
    try:
        live = Endpoints.read(path)
    except WaferlineError as exc:
        err_console.print(f"[red]{exc}\nis the line running (`waferline sim up`)?[/red]")
        raise typer.Exit(2) from None
    if live.control is None:
        err_console.print(f"[red]{path}: the line has no control socket[/red]")
        raise typer.Exit(2)
    reply = asyncio.run(send(Path(live.control), request))
    if not reply.get("ok"):
        err_console.print(f"[red]{reply.get('error')}[/red]")
        raise typer.Exit(1)
    console.print(json.dumps({k: v for k, v in reply.items() if k != "ok"}) if len(reply) > 1 else "ok")


LINE_OPT = typer.Option(DEFAULT_LINE, "--line", help="line name (finds its endpoints file)")
EPS_OPT = typer.Option(None, "--endpoints", help="endpoints JSON of the running line")


@app.command("fault")
def fault(
    tool: str,
    kind: FaultKind = typer.Argument(..., help="fault to switch on"),
    probability: float = typer.Option(1.0, help="chance per request / job"),
    delay_s: float = typer.Option(0.5, help="delay: wall seconds"),
    at_fraction: float = typer.Option(0.5, help="process faults: when in the job"),
    alarm_id: int = typer.Option(900, help="alarm: the ALID to raise"),
    magnitude: float = typer.Option(0.2, help="drift / off_target: relative error"),
    line: str = LINE_OPT,
    endpoints: Path | None = EPS_OPT,
) -> None:
    """Switch a fault on for one tool of a running line."""
    spec = {"kind": kind.value, "probability": probability, "delay_s": delay_s,
            "at_fraction": at_fraction, "alarm_id": alarm_id, "magnitude": magnitude}
    _control(line, endpoints, {"op": "fault", "tool": tool, "fault": spec})


@app.command("clear")
def clear(tool: str, kind: FaultKind | None = typer.Argument(None, help="fault to clear (default all)"),
          line: str = LINE_OPT, endpoints: Path | None = EPS_OPT) -> None:
    """Switch one fault (or all faults) off for a tool."""
    _control(line, endpoints, {"op": "clear", "tool": tool, "kind": kind.value if kind else None})


@app.command("interlock")
def interlock(tool: str, name: str, state: str = typer.Argument(..., help="made or open"),
              line: str = LINE_OPT, endpoints: Path | None = EPS_OPT) -> None:
    """Make or open an interlock input (e.g. door_closed open: the door opens)."""
    if state not in ("made", "open"):
        raise typer.BadParameter("state must be 'made' or 'open'")
    _control(line, endpoints, {"op": "interlock", "tool": tool, "name": name, "healthy": state == "made"})


@app.command("alarm")
def alarm(tool: str, alarm_id: int, line: str = LINE_OPT, endpoints: Path | None = EPS_OPT) -> None:
    """Raise an alarm on a tool (a running job pauses)."""
    _control(line, endpoints, {"op": "alarm", "tool": tool, "alarm_id": alarm_id})


@app.command("faults")
def faults(line: str = LINE_OPT, endpoints: Path | None = EPS_OPT) -> None:
    """List the active faults of every emulated tool."""
    _control(line, endpoints, {"op": "faults"})
