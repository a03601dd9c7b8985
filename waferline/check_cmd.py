"""`waferline check FLOW`: expand a flow, dry-run it on a traveler, print its steps, rules and claims.

Exit 0: the flow may run. Exit 1: it breaks a rule or claim (each printed as "step <uid>: <rule>:
<message>"). Exit 2: the flow file is unreadable or invalid, or the wafer count is outside its range.
"""

from __future__ import annotations

import json
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from drivers.errors import ConfigError
from sequencer.process.check import CheckReport, check_flow
from sequencer.process.flow import Step, load_flow
from waferline.common import console, err_console

KEY_VALUES = 6  # recipe values shown per step: the ones the flow file sets, in file order


def size(report: CheckReport) -> str:
    """'4 wafers', or the members of a package flow ('carrier1, chip1, chip2, carrier2')."""
    members = report.flow.members
    return f"members {', '.join(m.name for m in members)}" if members else f"{report.wafers} wafers"


def key_values(step: Step) -> str:
    if step.recipe is None:
        return ", ".join(step.effect.actions())
    data = step.recipe.model_dump()
    names = [n for n in type(step.recipe).model_fields if n in step.recipe.model_fields_set][:KEY_VALUES]
    return " ".join(f"{n}={data[n]:g}" if isinstance(data[n], float) else f"{n}={data[n]}" for n in names)


def step_rows(report: CheckReport) -> list[dict[str, Any]]:
    return [{"uid": s.uid, "fig": s.fig, "title": s.title, "kind": s.kind, "wafer": s.wafer, "face": s.face,
             "recipe": s.recipe.model_dump(mode="json") if s.recipe else None, "effect": s.effect.actions()}
            for s in report.steps]


def as_json(report: CheckReport) -> dict[str, Any]:
    return {
        "flow": report.flow.name, "wafers": report.wafers, "ok": report.ok, "steps": step_rows(report),
        "violations": [v.__dict__ for v in report.violations],
        "claims": [c.__dict__ for c in report.claims],
        "stack": report.stack.model_dump(mode="json"),
    }


def print_report(report: CheckReport) -> None:
    table = Table(title=f"{report.flow.name}: {report.flow.title} - {size(report)}, "
                        f"{len(report.steps)} steps")
    for col in ("uid", "fig", "title", "kind", "wafer", "face"):
        table.add_column(col, no_wrap=col in ("uid", "fig", "wafer"))
    table.add_column("key recipe values", overflow="fold")
    for s in report.steps:
        table.add_row(s.uid, s.fig, escape(s.title), s.kind or "-", str(s.wafer), s.face or "-",
                      escape(key_values(s)))
    console.print(table)
    claims = Table(title="claims (process-flows.md: what a finished stack must satisfy)")
    for col in ("claim", "ok", "title", "detail"):
        claims.add_column(col, overflow="fold")
    for c in report.claims:
        claims.add_row(str(c.claim), "[green]ok[/green]" if c.ok else "[red]FAIL[/red]", escape(c.title),
                       escape(c.detail))
    console.print(claims)


def check(
    flow: str = typer.Argument(..., help="flow name in configs/flows (flow-a, flow-b) or a YAML path"),
    wafers: int | None = typer.Option(None, "--wafers", "-n", help="stack size (default: the flow's)"),
    json_out: bool = typer.Option(False, "--json", help="machine-readable report"),
) -> None:
    """Check a flow before it runs: expand it for N wafers, simulate it, apply the rules and claims 1-7."""
    try:
        report = check_flow(load_flow(flow), wafers)
    except ConfigError as exc:
        err_console.print(f"[red]invalid flow[/red]\n{escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(2) from None
    if json_out:
        print(json.dumps(as_json(report), indent=2))
    else:
        print_report(report)
        for v in report.violations:
            console.print(escape(f"step {v.step}: {v.rule}: {v.message}"), style="red", soft_wrap=True)
        if report.ok:
            console.print(f"[green]{report.flow.name} with {size(report)}: ok[/green]")
    if not report.ok:
        raise typer.Exit(1)
