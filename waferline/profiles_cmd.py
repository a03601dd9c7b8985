"""`waferline profiles`: list the shipped profiles and validate profile files against their kind."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from drivers.errors import ProfileError
from drivers.kinds import KINDS
from drivers.profile_fit import check_fits_kind
from drivers.profiles import PROFILE_DIR, load_profile
from drivers.profiles.generate import GENERATORS, render_yaml
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
            check_fits_kind(p, kind, str(path))
            table.add_row(p.name, p.kind, p.transport, "[green]ok[/green]")
        except ProfileError as exc:
            bad += 1
            table.add_row(path.stem, "?", "?", "[red]invalid[/red]")
            err_console.print(f"[red]{exc}[/red]")
    console.print(table)
    if bad:
        raise typer.Exit(2)  # a bad config, like every other verb's


@app.command("new")
def new(
    kind: str = typer.Argument(..., help=f"tool kind: {', '.join(sorted(KINDS))}"),
    transport: str = typer.Argument(..., help="modbus, serial, mqtt or hsms"),
    output: Path | None = typer.Option(None, "--output", "-o", help="file to write (default: stdout)"),
) -> None:
    """Write a starter profile for KIND over TRANSPORT from the kind's recipe and result models."""
    if kind not in KINDS:
        err_console.print(f"[red]kind must be one of {', '.join(sorted(KINDS))} (got {kind!r})[/red]")
        raise typer.Exit(2)
    if transport not in GENERATORS:
        err_console.print(f"[red]transport must be one of {', '.join(GENERATORS)} (got {transport!r})[/red]")
        raise typer.Exit(2)
    text = render_yaml(KINDS[kind], transport)
    if output is None:
        print(text, end="")
    else:
        output.write_text(text, encoding="utf-8")
        console.print(f"wrote {output}")
