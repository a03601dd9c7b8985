"""Run ids and run directories: everything one run leaves behind lives in runs/<run id>/.

Ids are UTC timestamps plus 4 random hex digits ("20261122-061530-a3f9"): they sort by start time in
`ls`, and two runs started in the same second still get different directories (creation is atomic).
"""

from __future__ import annotations

import os
import re
import secrets
from datetime import UTC, datetime
from pathlib import Path

from drivers.errors import ConfigError

RUNS_DIR = Path("runs")
RUNS_DIR_ENV = "WAFERLINE_RUNS_DIR"
JOURNAL = "journal.sqlite"
CONTROL_SOCK = "control.sock"
TRAVELER = "traveler.json"
SUMMARY = "summary.json"
PID = "pid"
DIR_MODE = 0o750  # runs and their journals: the owner and the owner's group (the line's operators)
FILE_MODE = 0o640

_RUN_ID = re.compile(r"^\d{8}-\d{6}-[0-9a-f]{4}$")
_SHOW = 10  # how many existing ids an error message names


def runs_dir() -> Path:
    """RUNS_DIR, or $WAFERLINE_RUNS_DIR when set (read on every call so tests and the CLI can set it)."""
    env = os.environ.get(RUNS_DIR_ENV)
    return Path(env) if env else RUNS_DIR


def new_run_id(now: datetime | None = None) -> str:
    stamp = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{stamp:%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def list_runs() -> list[str]:
    """Ids of the runs under runs_dir(), oldest first."""
    root = runs_dir()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and _RUN_ID.match(p.name))


def _check_id(run_id: str) -> None:
    if not _RUN_ID.match(run_id):
        raise ConfigError(
            f"run id {run_id!r} is malformed: expected YYYYMMDD-HHMMSS-xxxx (e.g. 20261122-061530-a3f9)"
        )


def run_dir(run_id: str) -> Path:
    """The directory of an existing run; ConfigError naming the runs that do exist otherwise."""
    _check_id(run_id)
    path = runs_dir() / run_id
    if path.is_dir():
        return path
    known = list_runs()
    if not known:
        raise ConfigError(f"no run {run_id} under {runs_dir()}: there are no runs there yet")
    shown = ", ".join(known[-_SHOW:])
    more = f" (the {_SHOW} newest of {len(known)})" if len(known) > _SHOW else ""
    raise ConfigError(f"no run {run_id} under {runs_dir()}; runs there{more}: {shown}")


def create_run_dir(run_id: str | None = None) -> Path:
    """Make runs/<id>/ for a new run (a fresh id unless given); never reuses an existing directory."""
    root = runs_dir()
    if not root.exists():
        root.mkdir(parents=True, mode=DIR_MODE)
        os.chmod(root, DIR_MODE)  # mkdir's mode is masked by the umask
    for _ in range(100):
        rid = run_id or new_run_id()
        _check_id(rid)
        try:
            (root / rid).mkdir(mode=DIR_MODE)
        except FileExistsError:
            if run_id is not None:
                raise ConfigError(f"run {run_id} already exists under {root}") from None
            continue
        os.chmod(root / rid, DIR_MODE)
        return root / rid
    raise ConfigError(f"could not find a free run id under {root}")  # pragma: no cover


def write_pid(path: Path) -> None:
    """Record the sequencer's pid in runs/<id>/pid (status and the CLI read it)."""
    tmp = path / f".{PID}.tmp"
    tmp.write_text(f"{os.getpid()}\n")
    tmp.replace(path / PID)


def live_pid(path: Path) -> int | None:
    """The pid in runs/<id>/pid if that process still exists, else None (never ran, exited, crashed)."""
    try:
        pid = int((path / PID).read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid  # exists, owned by someone else
    return pid
