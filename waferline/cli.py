"""`waferline`: the front door. Global options configure logging and where configs come from."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import typer

from drivers.configs import CONFIG_DIR_ENV, set_config_dir
from drivers.errors import ConfigError
from drivers.logs import configure_logging
from waferline import (
    broker_cmd,
    check_cmd,
    hmi_cmd,
    list_cmd,
    profiles_cmd,
    report_cmd,
    run_cmd,
    sim_cmd,
    tools_cmd,
    verify_cmd,
)

app = typer.Typer(
    help="Equipment automation for a wafer-level 3-D stacked-package line.",
    no_args_is_help=True,
)
app.add_typer(sim_cmd.app, name="sim", help="Run emulated tools on loopback.")
app.add_typer(tools_cmd.app, name="tools", help="Talk to the tools of a line.")
app.add_typer(profiles_cmd.app, name="profiles", help="List and validate protocol profiles.")
app.add_typer(broker_cmd.app, name="broker", help="What a site's MQTT broker must enforce for a line.")
app.add_typer(hmi_cmd.users_app, name="users", help="HMI accounts: who may log in, with which role.")
app.command("hmi")(hmi_cmd.hmi)
app.command("check")(check_cmd.check)
app.command("run")(run_cmd.run)
app.command("resume")(run_cmd.resume)
app.command("bypass")(run_cmd.bypass)
app.command("scrap")(run_cmd.scrap)
app.command("report")(report_cmd.report)
app.command("verify")(verify_cmd.verify)
app.command("flows")(list_cmd.flows)
app.command("lines")(list_cmd.lines)
app.command("runs")(list_cmd.runs)
for _verb, _doc in run_cmd.REMOTE_VERBS.items():
    app.command(_verb)(run_cmd.make_remote(_verb, _doc))


def _version(value: bool) -> None:
    if value:
        try:
            typer.echo(f"waferline {version('waferline')}")
        except PackageNotFoundError:  # run from a checkout that was never installed
            typer.echo("waferline (not installed)")
        raise typer.Exit()


@app.callback()
def main(
    log_level: str = typer.Option("WARNING", "--log-level", help="DEBUG, INFO, WARNING, ERROR"),
    log_json: bool = typer.Option(False, "--log-json", help="one JSON object per log line"),
    config_dir: Path | None = typer.Option(
        None, "--config-dir", envvar=CONFIG_DIR_ENV,
        help="your configs (DIR/lines, DIR/flows, DIR/profiles, ...), searched before ./configs and the "
             "shipped ones"),
    show_version: bool = typer.Option(False, "--version", is_eager=True, callback=_version,
                                      help="print the version and exit"),
) -> None:
    if log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise typer.BadParameter(f"--log-level must be DEBUG, INFO, WARNING or ERROR, got {log_level}")
    configure_logging(log_level, log_json)
    try:
        set_config_dir(config_dir)
    except ConfigError as exc:
        raise typer.BadParameter(str(exc)) from None


if __name__ == "__main__":  # pragma: no cover
    app()
