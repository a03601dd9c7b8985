"""`waferline tools status|run`: connect a line's drivers, print E30 status, run one recipe."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from drivers.capture import CaptureChannel
from drivers.errors import ConfigError, WaferlineError
from drivers.factory import make_tool
from drivers.kinds import KINDS
from drivers.line import Endpoints, LineConfig
from drivers.tool import ToolStatus
from drivers.validation import parse_yaml, read_yaml, validate_model
from waferline.common import DEFAULT_LINE, console, err_console, load_line_or_exit
from waferline.live import live_line, resolve_endpoints
from waferline.owners import running_owners, tool_via_run

app = typer.Typer(no_args_is_help=True)
LINE_OPT = typer.Option(DEFAULT_LINE, "--line", help="line name or YAML path")
ENDPOINTS_OPT = typer.Option(
    None, "--endpoints", help="endpoints JSON from `sim up` (default: the line's, if it runs)"
)
JSON_OPT = typer.Option(False, "--json", help="machine-readable output")


async def query_line(line: LineConfig, owners: dict[str, Path] | None = None) -> list[dict[str, Any]]:
    """Status of every tool, concurrently; a tool that fails is reported, not fatal. A tool a running
    sequencer holds (`owners`) is asked through that run, on the run's own connection."""
    owners = owners or {}

    async def one(cfg: Any) -> dict[str, Any]:
        entry: dict[str, Any] = {"name": cfg.name, "kind": cfg.kind, "transport": cfg.address.transport}
        if cfg.name in owners:
            entry.update(await tool_via_run(owners[cfg.name], cfg.name, "status"), via=owners[cfg.name].name)
            return entry
        try:
            async with make_tool(cfg, line) as tool:
                status: ToolStatus = await tool.status()
            entry.update(ok=True, status=status.model_dump(mode="json"))
        except WaferlineError as exc:
            entry.update(ok=False, error=f"{type(exc).__name__}: {exc}")
        return entry

    return list(await asyncio.gather(*(one(cfg) for cfg in line.tools)))


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def status_table(rows: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=title)
    for col in ("tool", "state", "alarm", "interlocks", "last job"):
        table.add_column(col, no_wrap=col != "alarm")
    table.add_column("process values", overflow="fold")
    for r in rows:
        if not r["ok"]:
            table.add_row(f"{r['name']}\n{r['kind']}\n{r['transport']}", "[red]UNREACHABLE[/red]",
                          r["error"])
            continue
        s = r["status"]
        alarm = f"[red]{s['alarm']['id']} {s['alarm']['text']}[/red]" if s["alarm"] else "-"
        open_ = [k for k, v in s["interlocks"].items() if not v]
        locks = "[green]all made[/green]" if not open_ else "[red]" + "\n".join(open_) + "[/red]"
        vals = "\n".join(f"{k} {_fmt(v)}" for k, v in s["values"].items())
        via = f"\nvia run {r['via']}" if r.get("via") else ""
        table.add_row(f"{r['name']}\n{r['kind']}\n{r['transport']}{via}", s["state"], alarm, locks,
                      f"{s['job_outcome']}\n{s['job_id']}", vals)
    return table


def _endpoints_or_exit(line: str, explicit: Path | None, config: LineConfig) -> Endpoints | None:
    try:
        return resolve_endpoints(line, explicit, config)
    except WaferlineError as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None


@app.command("status")
def status(line: str = LINE_OPT, endpoints: Path | None = ENDPOINTS_OPT, as_json: bool = JSON_OPT) -> None:
    """Connect every tool of the line and print its status. Exit 1 if any is unreachable.

    Without a running `sim up`, the line's emulated tools are started in-process for the query.
    """
    config = load_line_or_exit(line)
    live = _endpoints_or_exit(line, endpoints, config)

    async def go() -> tuple[list[dict[str, Any]], str]:
        owners = await running_owners()
        if owners and live is None:  # a run on the embedded line: its tools live in the run's process
            return await query_line(config, owners), "running sequencer"
        async with live_line(config, live) as (resolved, source):
            return await query_line(resolved, owners), source

    rows, source = asyncio.run(go())
    if as_json:
        print(json.dumps({"line": config.name, "source": source, "tools": rows}, indent=2))
    else:
        console.print(status_table(rows, f"line {config.name} ({source})"))
    if not all(r["ok"] for r in rows):
        raise typer.Exit(1)


def parse_recipe(kind: str, recipe_file: Path | None, sets: list[str]) -> Any:
    data: dict[str, Any] = {}
    if recipe_file is not None:
        loaded = read_yaml(recipe_file)
        if not isinstance(loaded, dict):
            empty = "is empty: " if loaded is None else ""
            raise ConfigError(f"{recipe_file}: {empty}a recipe is a mapping of setpoints")
        data.update(loaded)
    for item in sets:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set {item!r}: expected FIELD=VALUE")
        data[key.strip()] = parse_yaml(value, f"--set {item!r}")
    source = f"{recipe_file} ({kind} recipe)" if recipe_file is not None else f"{kind} recipe"
    return validate_model(KINDS[kind].recipe_model, data, source)


@app.command("run")
def run(
    tool: str = typer.Argument(..., help="tool name in the line"),
    sets: list[str] = typer.Option([], "--set", help="recipe setpoint FIELD=VALUE (repeatable)"),
    recipe_file: Path | None = typer.Option(None, "--recipe", help="recipe YAML"),
    line: str = LINE_OPT,
    endpoints: Path | None = ENDPOINTS_OPT,
    as_json: bool = JSON_OPT,
    capture: Path | None = typer.Option(None, "--capture", help="append the driver's traffic (JSON lines)"),
) -> None:
    """Run one recipe on one tool and print what the tool measured. Exit 1 if the job fails."""
    config = load_line_or_exit(line)
    try:
        cfg = config.tool(tool)
        recipe = parse_recipe(cfg.kind, recipe_file, sets)
    except ConfigError as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    live = _endpoints_or_exit(line, endpoints, config)

    async def go() -> dict[str, Any]:
        owners = await running_owners()
        if tool in owners:
            raise ConfigError(f"{tool} is held by run {owners[tool].name}: a recipe cannot be run on it "
                              f"outside the run; `waferline tools status|abort|reset {tool}` go through it")
        async with live_line(config, live) as (resolved, _source):
            driver = make_tool(resolved.tool(tool), resolved)
            if capture is not None:
                driver.channel = CaptureChannel(driver.channel, capture)
            async with driver:
                result = await driver.run(recipe)
            return result.model_dump(mode="json")

    try:
        result = asyncio.run(go())
    except WaferlineError as exc:
        err_console.print(f"[red]{type(exc).__name__}: {exc}[/red]")
        raise typer.Exit(1) from None
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        table = Table(title=f"{tool}: job {result['job_id']} COMPLETED")
        table.add_column("result")
        table.add_column("value")
        for k, v in result.items():
            table.add_row(k, f"{v:.6g}" if isinstance(v, float) else str(v))
        console.print(table)


def _one_command(line: str, endpoints: Path | None, tool: str, verb: str) -> None:
    """abort or reset one tool - through the run that holds it, else directly - and report what the
    tool answered (its status read back), not just that the command went out."""
    config = load_line_or_exit(line)
    try:
        config.tool(tool)
    except ConfigError as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    live = _endpoints_or_exit(line, endpoints, config)

    async def go() -> tuple[dict[str, Any], str]:
        owners = await running_owners()
        if tool in owners:
            return await tool_via_run(owners[tool], tool, verb), f"via run {owners[tool].name}"
        async with (
            live_line(config, live) as (resolved, _source),
            make_tool(resolved.tool(tool), resolved) as driver,
        ):
            try:
                await (driver.abort() if verb == "abort" else driver.reset())
                status = await driver.status()
            except WaferlineError as exc:
                return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}, "directly"
            return {"ok": True, "status": status.model_dump(mode="json")}, "directly"

    try:
        answer, how = asyncio.run(go())
    except WaferlineError as exc:
        err_console.print(f"[red]{type(exc).__name__}: {exc}[/red]")
        raise typer.Exit(1) from None
    if not answer["ok"]:
        err_console.print(f"[red]{tool}: {verb} {how} failed: {answer['error']}[/red]")
        raise typer.Exit(1)
    st = answer["status"]
    alarm = f", alarm {st['alarm']['id']} {st['alarm']['text']}" if st.get("alarm") else ""
    console.print(f"{tool}: {verb} sent {how}; the tool shows {st['state']}, job {st['job_id']} "
                  f"{st['job_outcome']}{alarm}")


@app.command("abort")
def abort(tool: str, line: str = LINE_OPT, endpoints: Path | None = ENDPOINTS_OPT) -> None:
    """Abort the tool's job: the tool goes to its safe state (SEMI E30 abort)."""
    _one_command(line, endpoints, tool, "abort")


@app.command("reset")
def reset(tool: str, line: str = LINE_OPT, endpoints: Path | None = ENDPOINTS_OPT) -> None:
    """Clear the tool's alarm; the tool refuses while the cause persists (e.g. a door still open)."""
    _one_command(line, endpoints, tool, "reset")
