"""`waferline hold|restart|stop|abort|reset RUN_ID` over a real Unix socket, and run directories."""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import socket
import stat
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from drivers.errors import ConfigError
from sequencer.run.control import RunControl, RunState
from sequencer.run.journal import Journal
from sequencer.run.remote import (
    REMOTE_COMMANDS,
    RemoteControlError,
    RemoteControlServer,
    RunNotRunning,
    send_command,
)
from sequencer.run.rundir import (
    CONTROL_SOCK,
    JOURNAL,
    create_run_dir,
    list_runs,
    live_pid,
    new_run_id,
    run_dir,
    runs_dir,
    write_pid,
)

S = RunState

ME = getpass.getuser()  # the caller the control socket reads from the kernel (SO_PEERCRED)


@pytest.fixture
def runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("WAFERLINE_RUNS_DIR", str(tmp_path / "runs"))
    return tmp_path / "runs"


@pytest.fixture
def rundir(runs: Path) -> Path:
    return create_run_dir()


@pytest.fixture
def control(rundir: Path) -> Iterator[RunControl]:
    with Journal(rundir / JOURNAL, rundir.name) as j:
        yield RunControl(j, S.EXECUTE)


@pytest.fixture
async def served(control: RunControl, rundir: Path) -> AsyncIterator[RemoteControlServer]:
    server = RemoteControlServer(control, rundir / CONTROL_SOCK)
    await server.start()
    yield server
    await server.stop()


async def test_round_trip_hold_and_restart(served: RemoteControlServer, control: RunControl,
                                           rundir: Path) -> None:
    assert stat.S_IMODE(os.stat(rundir / CONTROL_SOCK).st_mode) == 0o600
    assert await send_command(rundir, "status", "alice", "") == {"ok": True, "state": "EXECUTE"}
    reply = await send_command(rundir, "hold", "alice", "check wafer 2 bow")
    assert reply == {"ok": True, "state": "HOLDING", "held_reason": f"{ME} (alice): check wafer 2 bow"}
    assert control.state is S.HOLDING
    control.state_complete()
    assert (await send_command(rundir, "status", "bob", ""))["state"] == "HELD"
    reply = await send_command(rundir, "restart", "alice", "bow ok")
    assert reply == {"ok": True, "state": "UNHOLDING"} and control.state is S.UNHOLDING
    alice = f"{ME} (alice)"
    assert [e.data["who"] for e in control.journal.events()] == [alice, "sequencer", alice]


async def test_refused_transition_and_unknown_command(served: RemoteControlServer, rundir: Path) -> None:
    reply = await send_command(rundir, "restart", "alice", "")
    assert reply["ok"] is False and reply["state"] == "EXECUTE"
    assert "not allowed in state EXECUTE" in reply["error"] and "hold, stop, abort" in reply["error"]
    for bad in ("launch", "start", "complete", "sc"):
        reply = await send_command(rundir, bad, "alice", "")
        assert reply["ok"] is False and reply["state"] == "EXECUTE"
        assert reply["error"] == f"unknown command {bad!r}; commands: {', '.join(REMOTE_COMMANDS)}"


async def test_bad_requests_and_several_per_connection(served: RemoteControlServer, rundir: Path) -> None:
    reader, writer = await asyncio.open_unix_connection(str(rundir / CONTROL_SOCK))
    try:
        for raw in (b"not json\n", b'{"command": ["hold"]}\n', b'{"command": "status", "who": "x"}\n'):
            writer.write(raw)
            await writer.drain()
            replies = json.loads(await reader.readline())
            if raw.startswith(b"not"):
                assert replies["ok"] is False and "bad request" in replies["error"]
            elif b"hold" in raw:
                assert replies["ok"] is False and "command" in replies["error"]
            else:
                assert replies == {"ok": True, "state": "EXECUTE"}
    finally:
        writer.close()
        await writer.wait_closed()


async def test_abort_reaches_subscribers(served: RemoteControlServer, control: RunControl,
                                         rundir: Path) -> None:
    seen: list[RunState] = []
    control.subscribe(lambda old, new: seen.append(new))
    assert (await send_command(rundir, "abort", "alice", "smoke"))["state"] == "ABORTING"
    assert seen == [S.ABORTING] and control.abort_requested()


async def test_not_running_messages(rundir: Path) -> None:
    rid = rundir.name
    sock = rundir / CONTROL_SOCK
    expected = f"run {rid} is not running (no sequencer on {sock}); use `waferline resume {rid}`"
    with pytest.raises(RunNotRunning) as info:
        await send_command(rundir, "hold", "alice", "")
    assert str(info.value) == expected
    stale = socket.socket(socket.AF_UNIX)  # a crashed sequencer's socket file: bound, nobody listening
    stale.bind(str(rundir / CONTROL_SOCK))
    stale.close()
    with pytest.raises(RunNotRunning, match="is not running"):
        await send_command(rundir, "status", "alice", "")


async def test_stale_socket_replaced_live_one_refused(control: RunControl, rundir: Path) -> None:
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(rundir / CONTROL_SOCK))
    stale.close()
    async with RemoteControlServer(control, rundir / CONTROL_SOCK):
        assert (await send_command(rundir, "status", "a", ""))["ok"] is True
        with pytest.raises(RemoteControlError, match="another sequencer already serves"):
            await RemoteControlServer(control, rundir / CONTROL_SOCK).start()
    assert not (rundir / CONTROL_SOCK).exists()


async def test_stop_ends_idle_clients_and_removes_socket(control: RunControl, rundir: Path) -> None:
    server = RemoteControlServer(control, rundir / CONTROL_SOCK)
    await server.start()
    reader, writer = await asyncio.open_unix_connection(str(rundir / CONTROL_SOCK))
    await asyncio.sleep(0.01)  # the server's connection task is now waiting for a request
    await server.stop()
    assert await reader.read() == b""  # the server hung up
    writer.close()
    await writer.wait_closed()
    assert not (rundir / CONTROL_SOCK).exists()
    with pytest.raises(RunNotRunning):
        await send_command(rundir, "status", "alice", "")


async def test_timeout_when_the_sequencer_does_not_answer(rundir: Path) -> None:
    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # swallow the request, answer nothing, until the client hangs up
        writer.close()

    server = await asyncio.start_unix_server(mute, path=str(rundir / CONTROL_SOCK))
    try:
        with pytest.raises(RemoteControlError, match=r"did not answer within 0.2 s"):
            await send_command(rundir, "hold", "alice", "", timeout=0.2)
    finally:
        server.close()
        await server.wait_closed()
        await asyncio.sleep(0.02)


async def test_long_run_directory_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    monkeypatch.setenv("WAFERLINE_RUNS_DIR", str(deep))
    rd = create_run_dir()
    assert len(str(rd / CONTROL_SOCK)) > 108
    with Journal(rd / JOURNAL, rd.name) as j:
        async with RemoteControlServer(RunControl(j, S.EXECUTE), rd / CONTROL_SOCK):
            assert (await send_command(rd, "hold", "alice", ""))["state"] == "HOLDING"


# --- run directories -----------------------------------------------------------------------------------
def test_run_ids_sortable_and_unique(runs: Path) -> None:
    early = new_run_id(datetime(2026, 11, 22, 6, 15, 30, tzinfo=UTC))
    assert early.startswith("20261122-061530-") and len(early) == 20
    assert early < new_run_id(datetime(2026, 11, 22, 6, 15, 31, tzinfo=UTC))
    made = {create_run_dir().name for _ in range(50)}
    assert len(made) == 50 and list_runs() == sorted(made) and runs_dir() == runs


def test_run_dir_errors_name_existing_runs(runs: Path) -> None:
    with pytest.raises(ConfigError, match="no runs there yet"):
        run_dir("20261122-061530-a3f9")
    a = create_run_dir("20261122-061530-a3f9")
    assert run_dir(a.name) == a
    with pytest.raises(ConfigError, match="runs there: 20261122-061530-a3f9"):
        run_dir("20261122-061530-ffff")
    with pytest.raises(ConfigError, match="malformed"):
        run_dir("../etc")
    with pytest.raises(ConfigError, match="already exists"):
        create_run_dir(a.name)


def test_pid_file(rundir: Path) -> None:
    assert live_pid(rundir) is None
    write_pid(rundir)
    assert live_pid(rundir) == os.getpid()
    (rundir / "pid").write_text("999999999\n")
    assert live_pid(rundir) is None
