"""Unattended runs (issue 10.8): SIGTERM is a controlled stop, and `--on-hold` ends a HELD run.

Each test drives the real CLI as a process against a `waferline sim up` line in its own process.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sequencer.run.journal import read_events
from sequencer.run.rundir import CONTROL_SOCK, JOURNAL, PID
from tests.fixtures.sequencer import WAFERLINE, sim_up
from tests.test_recovery import kill_mid_step


@pytest.fixture
def slow_line(tmp_path: Path) -> Iterator[tuple[Path, Path, dict[str, str]]]:
    with sim_up("emulated", 4000, tmp_path) as running:
        yield running


def _cli(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*WAFERLINE, *args], capture_output=True, text=True, timeout=timeout, env=env)


def _door(env: dict[str, str], eps: Path, how: str) -> subprocess.CompletedProcess[str]:
    return _cli(env, "sim", "interlock", "bonder1", "door_closed", how, "--endpoints", str(eps))


def test_sigterm_is_a_controlled_stop_with_summary_and_report(
    slow_line: tuple[Path, Path, dict[str, str]], tmp_path: Path
) -> None:
    line, eps, env = slow_line
    ctrl = subprocess.Popen([*WAFERLINE, "run", "flow-a", "--wafers", "2", "--line", str(line),
                             "--endpoints", str(eps)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    journal, _victim = kill_mid_step(ctrl, tmp_path / "runs", sig=signal.SIGTERM, done_before=4)
    out, err = ctrl.communicate(timeout=60)
    assert ctrl.returncode == 4, out + err  # STOPPED
    evs = read_events(journal)
    stop = next(e for e in evs if e.kind == "state" and e.data["to"] == "STOPPING")
    assert stop.data["who"] == "system (SIGTERM)"
    started = {e.data["uid"] for e in evs if e.kind == "step_started"}
    assert started <= {e.data["uid"] for e in evs if e.kind == "step_completed"}  # nothing left in doubt
    run = journal.parent
    assert json.loads((run / "summary.json").read_text())["state"] == "STOPPED"
    assert (run / "report" / "index.html").exists()
    assert not (run / CONTROL_SOCK).exists() and not (run / PID).exists()


def test_on_hold_fail_exits_held_and_the_run_resumes_later(
    slow_line: tuple[Path, Path, dict[str, str]], tmp_path: Path
) -> None:
    line, eps, env = slow_line
    assert _door(env, eps, "open").returncode == 0
    t0 = time.monotonic()
    held = _cli(env, "run", "flow-a", "--wafers", "2", "--line", str(line), "--endpoints", str(eps),
                "--on-hold", "fail", "--hold-timeout", "0.5")
    assert held.returncode == 3, held.stdout + held.stderr  # HELD, not a hang
    assert time.monotonic() - t0 < 60
    run = next((tmp_path / "runs").iterdir())
    summary = json.loads((run / "summary.json").read_text())
    assert summary["state"] == "HELD" and "door_closed" in summary["held_reason"]
    assert not (run / CONTROL_SOCK).exists()

    assert _door(env, eps, "made").returncode == 0
    resumed = subprocess.Popen([*WAFERLINE, "resume", run.name, "--line", str(line), "--endpoints", str(eps)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 30
    while _cli(env, "restart", run.name, "--why", "door closed again").returncode != 0:
        assert resumed.poll() is None and time.monotonic() < deadline
        time.sleep(0.2)
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, out + err
    assert json.loads((run / "summary.json").read_text())["state"] == "COMPLETE"


def test_on_hold_abort_aborts_after_the_timeout(
    slow_line: tuple[Path, Path, dict[str, str]], tmp_path: Path
) -> None:
    line, eps, env = slow_line
    assert _door(env, eps, "open").returncode == 0
    try:
        aborted = _cli(env, "run", "flow-a", "--wafers", "2", "--line", str(line), "--endpoints", str(eps),
                       "--on-hold", "abort", "--hold-timeout", "0.2")
    finally:
        _door(env, eps, "made")
    assert aborted.returncode == 5, aborted.stdout + aborted.stderr
    run = next((tmp_path / "runs").iterdir())
    evs = read_events(run / JOURNAL)
    abort = next(e for e in evs if e.kind == "state" and e.data["to"] == "ABORTING")
    assert abort.data["who"] == "sequencer (--on-hold abort)" and "door_closed" in abort.data["why"]


def test_on_hold_refuses_an_unknown_policy(tmp_path: Path) -> None:
    bad = _cli({"WAFERLINE_RUNS_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}, "run", "--on-hold", "later")
    assert bad.returncode == 2 and "on-hold" in bad.stderr
