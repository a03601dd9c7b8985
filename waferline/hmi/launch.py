"""Starting a run from the HMI: `waferline run` as a process of its own (as from a terminal), so the
run outlives neither more nor less than it would from the CLI, and the HMI stays only a window on it.
The person who pressed start is journaled after the HMI's OS user (`--who hmi:<user> (<role>)`)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from drivers.configs import names
from drivers.errors import ConfigError


class StartBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    flow: str = Field(default="flow-a", max_length=100)
    wafers: int | None = Field(default=None, ge=1, le=64)
    stacks: int = Field(default=1, ge=1, le=100)


def start(body: StartBody, where: list[str], who: str, logs: Path) -> int:
    """Spawn the run; its pid. ConfigError for a flow that is not one of the line's configs."""
    flows = names("flows")
    if body.flow not in flows:
        raise ConfigError(f"flow {body.flow!r} is not one of {flows}")
    logs.mkdir(parents=True, exist_ok=True, mode=0o700)
    args = [sys.executable, "-m", "waferline", "run", body.flow, *where, "--stacks", str(body.stacks),
            "--who", who, "--on-hold", "wait"]
    if body.wafers is not None:
        args += ["--wafers", str(body.wafers)]
    with (logs / f"run-{time.strftime('%Y%m%d-%H%M%S')}-{body.flow}.log").open("w") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)  # Ctrl-C of the HMI is not the run's
    return proc.pid
