"""Small helpers the CLI verbs share: loading a line with a clean error, default paths."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from drivers.errors import ConfigError
from drivers.line import LineConfig, load_line

console = Console()
err_console = Console(stderr=True)
DEFAULT_LINE = "emulated"


def default_endpoints_file(line: str) -> Path:
    return Path(".waferline") / f"endpoints-{Path(line).stem}.json"


def load_line_or_exit(line: str) -> LineConfig:
    try:
        return load_line(line)
    except ConfigError as exc:
        err_console.print(f"[red]invalid line config[/red]\n{exc}")
        raise typer.Exit(2) from None
