"""Which running sequencer owns a tool's connection, so `waferline tools` goes through it.

A tool's link has one owner while a run holds it: a second client on a serial line or a Modbus RTU
port cannot even open it ("could not exclusively lock port"), or steals the run's replies. So an
operator's status, abort or reset of a tool a run holds is sent over that run's control socket and
executed on the run's own connection; without a running sequencer the CLI opens the tool itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sequencer.run.remote import RemoteControlError, send_command
from sequencer.run.rundir import CONTROL_SOCK, list_runs, live_pid, runs_dir

TOOL_OP_TIMEOUT_S = 15.0  # an abort is read back for up to 5 s; a silent tool takes its request timeout


def caller() -> str:
    """The name journaled after the caller's OS user (the run reads that from the socket itself)."""
    return "waferline tools"


async def running_owners() -> dict[str, Path]:
    """Tool name -> the run directory of the live sequencer holding its connection."""
    owners: dict[str, Path] = {}
    for run_id in reversed(list_runs()):  # newest first
        directory = runs_dir() / run_id
        if live_pid(directory) is None or not (directory / CONTROL_SOCK).exists():
            continue
        try:
            reply = await send_command(directory, "tools", caller(), timeout=2.0)
        except RemoteControlError:
            continue
        for name in reply.get("tools") or []:
            owners.setdefault(name, directory)
    return owners


async def tool_via_run(directory: Path, name: str, op: str) -> dict[str, Any]:
    """One tool op through the run that owns the tool: {ok, status | error}."""
    try:
        reply = await send_command(directory, "tool", caller(), f"tools {op}", timeout=TOOL_OP_TIMEOUT_S,
                                   tool={"name": name, "op": op})
    except RemoteControlError as exc:
        return {"ok": False, "error": f"RemoteControlError: {exc}"}
    if not reply.get("ok"):
        return {"ok": False, "error": str(reply.get("error"))}
    return {"ok": True, "status": reply.get("tool_status")}
