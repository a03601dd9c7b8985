"""`waferline profiles`: list the shipped profiles and validate profile files against their kind."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from drivers.errors import ProfileError
from drivers.kinds import KINDS
from drivers.profiles import PROFILE_DIR, load_profile
from waferline.common import console, err_console

app = typer.Typer(no_args_is_help=True)


@app.command("check")
def check(files: list[Path] = typer.Argument(None, help="profile files (default: all shipped)")) -> None:
    """Validate profiles: schema, enum tables, and that they supply their kind's variables."""
    paths = files or sorted(PROFILE_DIR.glob("*.yaml"))
    bad = 0
    table = Table(title="profiles")
    for col in ("profile", "kind", "transport", "result"):
        table.add_column(col)
    for path in paths:
        try:
            p = load_profile(path)
            kind = KINDS.get(p.kind)
            if kind is None:
                raise ProfileError(f"{path}: kind: {p.kind!r} not one of {sorted(KINDS)}")
            missing = sorted(kind.required_variables() - p.variable_names())
            missing += sorted(kind.required_commands() - p.command_names())
            if missing:
                raise ProfileError(f"{path}: lacks {missing} needed by kind {p.kind}")
            table.add_row(p.name, p.kind, p.transport, "[green]ok[/green]")
        except ProfileError as exc:
            bad += 1
            table.add_row(path.stem, "?", "?", "[red]invalid[/red]")
            err_console.print(f"[red]{exc}[/red]")
    console.print(table)
    if bad:
        raise typer.Exit(1)
