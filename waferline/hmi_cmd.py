"""`waferline hmi` serves the operator HMI; `waferline users` manages its accounts (no default account)."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import typer

from drivers.errors import ConfigError, WaferlineError
from drivers.line import apply_endpoints
from drivers.netcheck import loopback_problem
from sequencer.run.roles import RANK
from waferline.common import console, default_endpoints_file, err_console, load_line_or_exit
from waferline.hmi.users import MIN_PASSWORD, add_user, load_users, remove_user, users_path
from waferline.live import resolve_endpoints

users_app = typer.Typer(help="HMI accounts: who may log in, with which role.", no_args_is_help=True)
USERS_OPT = typer.Option(None, "--users-file",
                         help="default: $WAFERLINE_HMI_USERS or .waferline/hmi-users.json")


def hmi(
    line: str = typer.Option("emulated", "--line", help="line name or YAML path"),
    endpoints: Path | None = typer.Option(None, "--endpoints", help="endpoints JSON of a running `sim up`"),
    host: str = typer.Option("127.0.0.1", "--host", help="interface to serve; not loopback needs --tls-*"),
    port: int = typer.Option(8080, "--port", min=0, max=65535),
    tls_cert: Path | None = typer.Option(None, "--tls-cert", help="PEM certificate (with --tls-key)"),
    tls_key: Path | None = typer.Option(None, "--tls-key", help="PEM private key, mode 0600"),
    users_file: Path | None = USERS_OPT,
    state_dir: Path = typer.Option(Path(".waferline"), "--state-dir",
                                   help="where the HMI keeps its journal (alarm acknowledgements)"),
) -> None:
    """Serve the operator HMI: the line, the runs, their alarms and the run commands, in a browser."""
    import uvicorn

    from waferline.hmi.app import create_app

    config = load_line_or_exit(line)
    try:
        live = resolve_endpoints(line, endpoints, config)
        if (tls_cert is None) != (tls_key is None):
            raise ConfigError("--tls-cert and --tls-key go together")
        if tls_cert is None and (why := loopback_problem(host)) is not None:
            raise ConfigError(f"--host {host}: {why}; serving another interface needs --tls-cert and "
                              "--tls-key (passwords and session cookies must not cross a network in clear)")
        accounts = load_users(users_file)
    except WaferlineError as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    if not accounts.users:
        err_console.print(f"[yellow]no HMI accounts in {users_file or users_path()}: create one with "
                          "`waferline users add NAME --role operator`[/yellow]")
    resolved = apply_endpoints(config, live) if live is not None else config
    served = live is not None or not any(t.emulated for t in config.tools)
    where = ["--line", line]
    if live is not None:
        where += ["--endpoints", str(endpoints or default_endpoints_file(line))]
    try:
        app = create_app(resolved, served=served, users_file=users_file, state_dir=state_dir, where=where,
                         secure_cookies=tls_cert is not None)
    except WaferlineError as exc:  # e.g. another HMI of this line writes the journal
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    scheme = "https" if tls_cert else "http"
    console.print(f"HMI of line {config.name} on {scheme}://{host}:{port}/ (Ctrl-C to stop)")
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning",
                                           ssl_certfile=str(tls_cert) if tls_cert else None,
                                           ssl_keyfile=str(tls_key) if tls_key else None))
    asyncio.run(server.serve())


HMI_PORT_OPT = typer.Option(None, "--hmi-port", min=1, max=65535,
                            help="also serve the operator HMI on 127.0.0.1:PORT (`waferline hmi`)")


@contextlib.contextmanager
def hmi_beside(line: str, endpoints: Path | None, port: int | None) -> Iterator[None]:
    """`waferline hmi` as a child process for as long as the block runs (a process of its own: the
    browsers' load never lands on the sequencer's or the emulators' event loop)."""
    if port is None:
        yield
        return
    args = [sys.executable, "-m", "waferline", "hmi", "--line", line, "--port", str(port)]
    proc = subprocess.Popen([*args, "--endpoints", str(endpoints)] if endpoints else args)
    console.print(f"HMI on http://127.0.0.1:{port}/ (its own process, pid {proc.pid})")
    try:
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@users_app.command("add")
def users_add(
    name: str = typer.Argument(..., help="the login name"),
    role: str = typer.Option(..., "--role", help="operator, engineer or supervisor"),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="read the password from stdin"),
    replace: bool = typer.Option(False, "--replace", help="set a new password or role for an existing user"),
    users_file: Path | None = USERS_OPT,
) -> None:
    """Create an HMI account; the password is asked for (never an argument: it would show in `ps`)."""
    if role not in RANK:
        err_console.print(f"[red]--role {role!r}: one of {', '.join(RANK)}[/red]")
        raise typer.Exit(2)
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt(f"password for {name} (at least {MIN_PASSWORD} characters)", hide_input=True,
                                confirmation_prompt=True)
    try:
        path = add_user(name, role, password, users_file, replace=replace)  # type: ignore[arg-type]
    except ConfigError as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    console.print(f"user {name} ({role}) in {path}")


@users_app.command("list")
def users_list(users_file: Path | None = USERS_OPT) -> None:
    """The accounts and their roles (never their hashes)."""
    try:
        accounts = load_users(users_file)
    except ConfigError as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    for name, account in sorted(accounts.users.items()):
        console.print(f"{name}  {account.role}  since {account.created}")


@users_app.command("remove")
def users_remove(name: str, users_file: Path | None = USERS_OPT) -> None:
    """Delete an account (its open sessions end when the HMI restarts)."""
    try:
        remove_user(name, users_file)
    except ConfigError as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    console.print(f"user {name} removed")
