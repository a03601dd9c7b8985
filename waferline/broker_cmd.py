"""`waferline broker acl --line LINE`: the mosquitto ACL a site broker needs for a line.

A site's own broker (broker.embedded: false) enforces its own password file and ACL; this prints the
ACL derived from the same topics the drivers and tools use, so the two cannot drift apart. Each tool
logs in as its name, the controller as broker.username.
"""

from __future__ import annotations

import typer

from drivers.mqtt_access import acl_text, line_grants
from waferline.common import console, load_line_or_exit

app = typer.Typer(no_args_is_help=True, add_completion=False)


@app.command("acl")
def acl(line: str = typer.Option("emulated", "--line", help="line name in configs/lines or a path")) -> None:
    """Print a mosquitto acl_file for LINE: the controller commands, each tool answers for itself."""
    config = load_line_or_exit(line)
    if config.broker is None:
        console.print(f"line {config.name} has no MQTT tools: no ACL needed")
        return
    console.print(acl_text(line_grants(config)), end="", markup=False, highlight=False)
