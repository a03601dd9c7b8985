"""Find the line to talk to: a running `sim up` (endpoints file), configured addresses, or emulators
started in-process for the duration of one command (the embedded emulated line)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from drivers.line import Endpoints, LineConfig, apply_endpoints, check_endpoints
from waferline.common import default_endpoints_file

EMBEDDED = "embedded emulators"  # the source of a line whose emulators live in this process


def _pid_alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def resolve_endpoints(line: str, explicit: Path | None, config: LineConfig | None = None) -> Endpoints | None:
    """The explicit file (errors if unreadable), else the line's default file if its line still runs;
    ConfigError if it describes other tools than `config`'s."""
    live: Endpoints | None = None
    if explicit is not None:
        live = Endpoints.read(explicit)
    elif (path := default_endpoints_file(line)).exists():
        live = Endpoints.read(path)
        live = live if _pid_alive(live.pid) else None
    if live is not None and config is not None:
        check_endpoints(config, live)
    return live


@asynccontextmanager
async def live_line(config: LineConfig, endpoints: Endpoints | None) -> AsyncIterator[tuple[LineConfig, str]]:
    if endpoints is not None:
        yield apply_endpoints(config, endpoints), "endpoints file"
        return
    if not any(t.emulated for t in config.tools):
        yield config, "configured addresses"
        return
    from sim_tools.line import EmulatedLine  # the CLI's emulated-line wiring

    async with EmulatedLine(config) as emulated:
        assert emulated.endpoints is not None
        yield apply_endpoints(config, emulated.endpoints), EMBEDDED
