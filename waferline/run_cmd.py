"""`waferline run|resume` and the ISA-88 commands that reach a running sequencer.

`waferline run` with no arguments runs Flow A with a 4-wafer stack on the embedded emulated line.
Ctrl-C asks for a controlled stop (finish what is in a chamber, start nothing new); a second Ctrl-C
aborts. `waferline hold|restart|stop|abort|reset RUN_ID` talk to the run's control socket.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import signal
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from drivers.errors import WaferlineError
from sequencer.run.chain import TAMPERED_EXIT, JournalTampered
from sequencer.run.control import InvalidTransition, RunControl
from sequencer.run.holdpolicy import HoldPolicy
from sequencer.run.remote import send_command
from sequencer.run.resume import resume_run
from sequencer.run.run import RunOutcome, start_run
from sequencer.run.rundir import run_dir
from waferline.common import DEFAULT_LINE, console, err_console, load_line_or_exit
from waferline.hmi_cmd import HMI_PORT_OPT, hmi_beside
from waferline.live import EMBEDDED, live_line, resolve_endpoints

LINE_OPT = typer.Option(DEFAULT_LINE, "--line", help="line name or YAML path")
EPS_OPT = typer.Option(None, "--endpoints", help="endpoints JSON of a running `sim up`")
EXIT = {"COMPLETE": 0, "HELD": 3, "STOPPED": 4, "ABORTED": 5}  # README "Exit codes"
ON_HOLD_OPT = typer.Option("wait", "--on-hold",
                           help="when HELD: wait for an operator, fail (exit 3, resumable) or abort")
HOLD_TIMEOUT_OPT = typer.Option(0.0, "--hold-timeout", help="seconds HELD before --on-hold acts")


class ProgressObserver:
    """Rich progress: a bar over the steps, a line per completed step, holds in red."""

    def __init__(self, progress: Progress, total: int, stacks: int = 1) -> None:
        self.progress = progress
        self.task = progress.add_task("starting", total=total)
        self.many = stacks > 1

    def __call__(self, event: str, step: Any, info: dict[str, Any]) -> None:
        if event == "planned":  # the run's own count of its steps: the CLI never loads the flow itself
            self.progress.update(self.task, total=info["steps"], completed=info.get("done", 0))
            return
        if event == "abort_unconfirmed":
            self.progress.console.print(f"[red]abort of {info['tool']} NOT confirmed: {info['reason']}; "
                                        "go to the tool[/red]")
            return
        where = f"{info.get('stack', '').rsplit('-', 1)[-1]} {step.uid}" if self.many else step.uid
        if event == "started":
            self.progress.update(self.task, description=f"{where} {step.title[:40]} on {info['tool']}")
        elif event == "completed":
            self.progress.advance(self.task)
        elif event == "held":
            held = f"HELD at {where}: {info['interlock']}: {info['reason']}"
            self.progress.console.print(f"[red]{held}[/red]")
        elif event == "failed":
            self.progress.console.print(f"[red]{where} failed on {info['tool']}: {info['reason']}[/red]")


def stop_on_ctrl_c(control: RunControl) -> None:
    """First Ctrl-C or SIGTERM (systemd, docker stop, a CI timeout): controlled stop - finish what is
    in a chamber, start nothing new, file summary and report, remove the socket; a second: abort.
    Both journaled with the signal that asked."""
    presses = {"n": 0}

    def on_signal(who: str, why: str) -> None:
        presses["n"] += 1
        command = "stop" if presses["n"] == 1 else "abort"
        try:
            control.command(command, who=who, why=why)
            console.print(f"[yellow]{command} requested by {who} (again to abort)[/yellow]")
        except InvalidTransition as exc:
            console.print(f"[yellow]{exc}[/yellow]")

    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGINT, on_signal, "operator (Ctrl-C)", "interrupt from the terminal")
    loop.add_signal_handler(signal.SIGTERM, on_signal, "system (SIGTERM)", "terminate signal to the process")


def _report(outcome: RunOutcome) -> None:
    table = Table(title=f"run {outcome.run_id}: {outcome.state}")
    table.add_column("claim")
    table.add_column("check")
    table.add_column("detail")
    for c in outcome.claims:
        table.add_row(f"{c.claim} {c.title}", "[green]ok[/green]" if c.ok else "[red]FAILED[/red]", c.detail)
    console.print(table)
    if len(outcome.stacks) > 1:
        bad = [s for s, cs in outcome.claims_by_stack.items() if not all(c.ok for c in cs)]
        console.print(f"{len(outcome.stacks)} stacks; the table is {outcome.stack.stack_id}'s; claims "
                      + (f"[red]FAILED for {', '.join(bad)}[/red]" if bad else "ok for every stack"))
    for stack in outcome.stacks[:1] if len(outcome.stacks) > 8 else outcome.stacks:
        wafers = ", ".join(f"w{w.index} {w.state}" for w in stack.wafers)
        console.print(f"stack {stack.stack_id}: {wafers}")
    if outcome.held_reason:
        console.print(f"[red]held: {outcome.held_reason}[/red]")
    _throughput(outcome.directory / "report" / "report.json")
    console.print(f"run directory: {outcome.directory} (journal, traveler.json, summary.json, "
                  "report/index.html)")


def _throughput(report: Path) -> None:
    """One line from the run's report: throughput against the bottleneck bound."""
    try:
        figures = json.loads(report.read_text())
    except (OSError, ValueError):
        return
    if figures.get("ratio") is not None:
        console.print(f"throughput {figures['throughput_per_hour']:.4f} stacks/tool-h, bottleneck "
                      f"{figures['bottleneck']} bound {figures['bound_per_hour']:.4f}: ratio "
                      f"{figures['ratio']:.2f}")


def _go(coro_factory: Any, line: str, endpoints: Path | None, time_scale: float | None) -> None:
    config = load_line_or_exit(line)
    try:
        live = resolve_endpoints(line, endpoints, config)
    except WaferlineError as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    if live is not None and time_scale is not None and time_scale != live.time_scale:
        err_console.print(f"[red]--time-scale {time_scale:g} differs from the running emulators' "
                          f"{live.time_scale:g} (their endpoints file): the drivers must run at the "
                          "emulators' scale; leave --time-scale out[/red]")
        raise typer.Exit(2)
    if live is not None and live.time_scale != config.time_scale:
        console.print(f"time scale {live.time_scale:g}: the running emulators' (endpoints file), not the "
                      f"line config's {config.time_scale:g}")
    if time_scale is not None:
        config = config.model_copy(update={"time_scale": time_scale})

    async def main() -> RunOutcome:
        async with live_line(config, live) as (resolved, source):
            with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                          TimeElapsedColumn(), console=console, transient=False) as progress:
                return await coro_factory(resolved, progress, source == EMBEDDED)

    try:
        outcome = asyncio.run(main())
    except JournalTampered as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(TAMPERED_EXIT) from None
    except WaferlineError as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    _report(outcome)
    raise typer.Exit(EXIT.get(outcome.state.value, 1))


def run(
    flow: str = typer.Argument("flow-a", help="flow name (configs/flows) or YAML path"),
    line: str = LINE_OPT,
    wafers: int | None = typer.Option(None, "--wafers", help="stack size (the flow's range, default 4)"),
    stacks: int = typer.Option(1, "--stacks", help="stacks in the lot, run concurrently over the pools"),
    time_scale: float | None = typer.Option(None, "--time-scale", help="tool s per wall s (emulators)"),
    endpoints: Path | None = EPS_OPT,
    journal_sync: str = typer.Option("normal", "--journal-sync", help="normal (kill -9 safe) or full"),
    on_hold: str = ON_HOLD_OPT,
    hold_timeout: float = HOLD_TIMEOUT_OPT,
    hmi_port: int | None = HMI_PORT_OPT,
    who: str = typer.Option("", "--who", help="a name journaled after your OS user (e.g. the HMI's user)"),
) -> None:
    """Run a flow on the line; with no arguments Flow A, 4 wafers, on the embedded emulated line."""
    if journal_sync not in ("normal", "full"):
        raise typer.BadParameter("--journal-sync must be normal or full")
    policy = _hold_policy(on_hold, hold_timeout)

    async def factory(resolved: Any, progress: Progress, _embedded: bool) -> RunOutcome:
        observer = ProgressObserver(progress, 0, stacks)
        return await start_run(flow, resolved, wafers=wafers, stacks=stacks, observer=observer,
                               who=starter(who), on_control=stop_on_ctrl_c, sync=journal_sync,  # type: ignore[arg-type]
                               hold_policy=policy, after=file_report)

    with hmi_beside(line, endpoints, hmi_port):
        _go(factory, line, endpoints, time_scale)


def resume(run_id: str, line: str = LINE_OPT, endpoints: Path | None = EPS_OPT,
           time_scale: float | None = typer.Option(None, "--time-scale"),
           on_hold: str = ON_HOLD_OPT, hold_timeout: float = HOLD_TIMEOUT_OPT) -> None:
    """Resume a run after the controller died: ask each tool about its last job, never re-run a step."""
    policy = _hold_policy(on_hold, hold_timeout)

    async def factory(resolved: Any, progress: Progress, embedded: bool) -> RunOutcome:
        observer = ProgressObserver(progress, 0)
        note = None
        if embedded:
            note = ("the run's emulators were embedded in the controller and were lost with it; these "
                    "are fresh ones that remember no job, so every step in doubt becomes UNKNOWN for the "
                    "operator (it is never re-run). Resume against `waferline sim up --endpoints-file` "
                    "or real tools to recover jobs from the tools themselves.")
            progress.console.print(f"[yellow]{note}[/yellow]")
        return await resume_run(run_id, resolved, observer=observer, on_control=stop_on_ctrl_c, note=note,
                                hold_policy=policy, after=file_report)

    _go(factory, line, endpoints, time_scale)


def starter(who: str) -> str:
    """Who started a run, as the control socket journals its callers: the OS user, then any name given."""
    user = getpass.getuser()
    return user if not who.strip() or who.strip() == user else f"{user} ({who.strip()})"


async def file_report(directory: Path) -> None:
    """Once a run has filed its summary: its report (matplotlib, ~40 MB, loaded only now)."""
    from sequencer.reports.write import file_report as write

    await write(directory)


def _hold_policy(on_hold: str, timeout_s: float) -> HoldPolicy:
    try:
        return HoldPolicy(on_hold, timeout_s)  # type: ignore[arg-type]
    except ValueError as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None


def _send(
    run_id: str, command: str, who: str, why: str, bypass: dict[str, Any] | None = None,
    stack: str | None = None,
) -> dict[str, Any]:
    """One request to the run's sequencer; exit 2 if it is not reachable, 1 if it says no."""
    try:
        reply = asyncio.run(send_command(run_dir(run_id), command, who, why, bypass=bypass, stack=stack))
    except WaferlineError as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    if not reply.get("ok"):
        err_console.print(f"[red]{reply.get('error')}[/red]")
        raise typer.Exit(1)
    return reply


def _remote(run_id: str, command: str, why: str, who: str) -> None:
    reply = _send(run_id, command, who, why)
    extra = f" ({reply['held_reason']})" if reply.get("held_reason") else ""
    console.print(f"run {run_id}: {reply['state']}{extra}")


def make_remote(command: str, doc: str) -> Any:
    def verb(run_id: str, why: str = typer.Option("", "--why", help="reason, journaled"),
             who: str = typer.Option("", "--who", help="a name journaled after your OS user")) -> None:
        _remote(run_id, command, why, who)

    verb.__doc__ = doc
    return verb


REMOTE_VERBS = {
    "hold": "Hold the run at the next step boundary (the step in a chamber finishes).",
    "restart": "Restart a HELD run (re-checks every permissive first).",
    "stop": "Stop: finish what is in a chamber, start nothing new.",
    "abort": "Abort: the tool in use goes to its safe state now; the wafer is marked ABORTED.",
    "reset": "Reset a STOPPED, ABORTED or COMPLETE run to IDLE.",
    "status": "Show a running sequencer's state and why it is held.",
}


def scrap(
    run_id: str,
    stack: str = typer.Argument(..., help="the stack: its id or S<n> (S3 = the lot's third)"),
    why: str = typer.Option(..., "--why", help="the disposition, for the traveler (10+ characters)"),
    who: str = typer.Option("", "--who", help="a name journaled after your OS user"),
) -> None:
    """Scrap one stack of a HELD lot: its unfinished wafers become ABORTED and it takes no further
    step; `restart` then goes on with the other stacks."""
    reply = _send(run_id, "scrap", who, why, stack=stack)
    console.print(f"run {run_id}: stack {stack} scrapped; run {reply['state']} (restart to go on)")


def bypass(
    run_id: str,
    interlock: str = typer.Argument(..., help="the interlock to bypass, e.g. n2_supply_on"),
    role: str | None = typer.Option(None, "--role", help="the role to act in (default: your role from the "
                                    "roles file; never above it)"),
    reason: str = typer.Option(..., "--reason", help="why, in words an auditor can follow"),
    minutes: float = typer.Option(30, "--minutes", help="the bypass expires after this (at most 480)"),
    who: str = typer.Option("", "--who", help="a name journaled after your OS user"),
) -> None:
    """Bypass one non-safety interlock of a running run for a while (journaled; never EMO or doors)."""
    _send(run_id, "bypass", who, reason, bypass={"interlock": interlock, "role": role, "minutes": minutes})
    console.print(f"run {run_id}: {interlock} bypassed for {minutes:g} min")
