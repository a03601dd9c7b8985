"""Who commanded what (issue 11.3): the control socket journals the caller's OS identity (SO_PEERCRED)
and checks the caller's role from the site's roles file; a refusal names the role needed."""

from __future__ import annotations

import asyncio
import getpass
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from drivers.line import LineConfig
from sequencer.run.journal import read_events
from sequencer.run.remote import send_command
from sequencer.run.roles import ROLES_ENV
from sequencer.run.run import RunOutcome, start_run
from sequencer.run.rundir import JOURNAL
from sim_tools.line import EmulatedLine
from tests.fixtures.sequencer import WAFERLINE
from tests.test_sequencer_e2e import _wait_for_state

ME = getpass.getuser()


def roles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, role: str, mode: int = 0o644) -> Path:
    path = tmp_path / "roles.yaml"
    path.write_text(yaml.safe_dump({"users": {ME: role}}))
    path.chmod(mode)
    monkeypatch.setenv(ROLES_ENV, str(path))
    return path


@pytest.fixture
async def held(healthy: tuple[LineConfig, EmulatedLine], runs: Path
               ) -> AsyncIterator[tuple[Path, asyncio.Task[RunOutcome]]]:
    """A Flow A run HELD on a refused permissive (the bonder's vacuum is not at base)."""
    config, emulated = healthy
    emulated.tools["bonder1"].set_interlock("vacuum_ok", False)
    task = asyncio.create_task(start_run("flow-a", config, wafers=2))
    run_dir = await _wait_for_state(runs, "HELD")
    yield run_dir, task
    if not task.done():  # left HELD by the test: aborted (abort needs no more than an operator)
        reply = await send_command(run_dir, "abort", "", "test done")
        assert reply["ok"], reply
        await asyncio.wait_for(task, 30)


async def test_an_operator_is_refused_engineer_and_supervisor_commands(
    held: tuple[Path, asyncio.Task[RunOutcome]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir, task = held
    roles(tmp_path, monkeypatch, "operator")
    bypass = await send_command(run_dir, "bypass", "eve", "vacuum gauge being replaced",
                                bypass={"interlock": "vacuum_at_base", "minutes": 5})
    assert not bypass["ok"] and f"bypass needs the engineer role; {ME} is operator" in bypass["error"]
    scrap = await send_command(run_dir, "scrap", "eve", "wafers look burnt, scrap", stack="S1")
    assert not scrap["ok"] and "scrap needs the supervisor role" in scrap["error"]
    reset = await send_command(run_dir, "tool", "eve", "clear", tool={"name": "bonder1", "op": "reset"})
    assert not reset["ok"] and "tools reset needs the engineer role" in reset["error"]
    assert (await send_command(run_dir, "status", ""))["ok"]  # an operator may look, hold and abort
    assert (await send_command(run_dir, "abort", "", "operator takes the lot out"))["ok"]
    await asyncio.wait_for(task, 30)
    evs = read_events(run_dir / JOURNAL)
    abort = next(e for e in evs if e.kind == "state" and e.data["to"] == "ABORTING")
    assert abort.data["who"] == ME  # no --who: the OS user alone
    assert not any(e.kind in ("bypass", "stack_scrapped") for e in read_events(run_dir / JOURNAL))


async def test_an_engineer_bypasses_as_themselves_never_above_their_role(
    held: tuple[Path, asyncio.Task[RunOutcome]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir, _ = held
    roles(tmp_path, monkeypatch, "engineer")
    above = await send_command(run_dir, "bypass", "eve", "vacuum gauge being replaced",
                               bypass={"interlock": "vacuum_at_base", "role": "supervisor", "minutes": 5})
    assert not above["ok"] and f"{ME} is engineer" in above["error"]
    cli = await asyncio.create_subprocess_exec(  # the CLI, as a process: --who adds, never replaces
        *WAFERLINE, "bypass", run_dir.name, "vacuum_at_base", "--reason", "vacuum gauge being replaced",
        "--minutes", "5", "--who", "root-pretender", stderr=subprocess.PIPE, stdout=subprocess.PIPE)
    _, err = await asyncio.wait_for(cli.communicate(), 60)
    assert cli.returncode == 0, err.decode()
    grant = next(e for e in read_events(run_dir / JOURNAL) if e.kind == "bypass")
    assert (grant.data["who"], grant.data["role"]) == (f"{ME} (root-pretender)", "engineer")


async def test_a_roles_file_others_may_write_is_refused(
    held: tuple[Path, asyncio.Task[RunOutcome]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir, _ = held
    path = roles(tmp_path, monkeypatch, "supervisor", mode=0o666)
    reply = await send_command(run_dir, "hold", "", "")
    assert not reply["ok"] and f"chmod go-w {path}" in reply["error"]
    path.chmod(0o644)  # the fixture's teardown aborts the run as this (still monkeypatched) file's user
