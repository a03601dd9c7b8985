"""`waferline tools` while a sequencer runs (issue 10.5): status, abort and reset of a tool the run
holds go through the run's control socket, over the connection the run owns; every tool's status
stays readable on every transport, and the operator is told what the tool answered.
"""

from __future__ import annotations

import getpass
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sequencer.run.journal import read_events
from sequencer.run.rundir import JOURNAL
from tests.fixtures.sequencer import WAFERLINE, sim_up

NINE = {"bonder1", "grinder1", "plater1", "sputter1", "etcher1", "cvd1", "saw1", "coater1", "mounter1"}


@pytest.fixture
def held_run(tmp_path: Path) -> Iterator[tuple[Path, Path, dict[str, str]]]:
    """A `sim up` line and a Flow A run on it, HELD at its first bond (the bonder's door is open)."""
    with sim_up("emulated", 4000, tmp_path) as (line, eps, env):
        cli(env, "sim", "interlock", "bonder1", "door_closed", "open", "--endpoints", str(eps))
        run = subprocess.Popen([*WAFERLINE, "run", "flow-a", "--wafers", "2", "--line", str(line),
                                "--endpoints", str(eps)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True, env=env)
        try:
            deadline = time.monotonic() + 60
            while True:
                runs = list((tmp_path / "runs").glob("*/journal.sqlite"))
                states = [e.data["to"] for e in read_events(runs[0]) if e.kind == "state"] if runs else []
                if states and states[-1] == "HELD":
                    break
                alive = run.poll() is None and time.monotonic() < deadline
                assert alive, run.stderr.read() if run.stderr else ""
                time.sleep(0.1)
            yield runs[0].parent, eps, env
        finally:
            run.kill()
            run.wait()


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*WAFERLINE, *args], capture_output=True, text=True, timeout=60, env=env)


def test_status_of_every_tool_stays_readable_through_the_run(
    held_run: tuple[Path, Path, dict[str, str]]
) -> None:
    run, eps, env = held_run
    res = cli(env, "tools", "status", "--endpoints", str(eps), "--json")
    assert res.returncode == 0, res.stdout + res.stderr
    rows = {r["name"]: r for r in json.loads(res.stdout)["tools"]}
    assert set(rows) == NINE and all(r["ok"] for r in rows.values()), rows
    # the run holds Flow A's kinds: those answer through it, serial and RTU included
    assert {n for n, r in rows.items() if r.get("via") == run.name} == NINE - {"grinder1", "cvd1"}
    assert rows["bonder1"]["status"]["interlocks"]["door_closed"] is False


def test_abort_and_reset_go_through_the_run_and_report_the_answer(
    held_run: tuple[Path, Path, dict[str, str]]
) -> None:
    run, eps, env = held_run
    aborted = cli(env, "tools", "abort", "plater1", "--endpoints", str(eps))  # Modbus RTU
    said = " ".join(aborted.stdout.split())
    assert aborted.returncode == 0 and f"abort sent via run {run.name}" in said, said
    assert "the tool shows IDLE" in said
    reset = cli(env, "tools", "reset", "saw1", "--endpoints", str(eps))  # serial
    assert reset.returncode == 0 and "the tool shows IDLE" in " ".join(reset.stdout.split()), reset.stderr
    refused = cli(env, "tools", "reset", "bonder1", "--endpoints", str(eps))  # its door is still open
    said = " ".join(refused.stderr.split())
    assert refused.returncode == 1 and "bonder1 refused reset: door_closed is not made" in said, said
    ran = cli(env, "tools", "run", "saw1", "--endpoints", str(eps), "--set", "spindle_rpm=30000",
              "--set", "feed_mm_s=20", "--set", "cut_count=4", "--set", "cut_length_mm=100")
    assert ran.returncode == 1 and f"held by run {run.name}" in " ".join(ran.stderr.split())
    commands = [e.data for e in read_events(run / JOURNAL) if e.kind == "tool_command"]
    assert [(c["tool"], c["op"], c["ok"]) for c in commands] == [
        ("plater1", "abort", True), ("saw1", "reset", True), ("bonder1", "reset", False)]
    assert all(c["who"].startswith(getpass.getuser()) for c in commands)
