"""kill -9 the controller mid-step, resume, and audit on the tools that every step ran exactly once.

The emulators run in their own `waferline sim up` process so they outlive the controller, exactly as
real tools do; the audit reads the job ids each tool accepted (sim control socket, `jobs`).
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sequencer.journal import JournalError, read_events
from sequencer.rundir import JOURNAL
from sim_tools.control import send
from tests.fixtures.sequencer import WAFERLINE, sim_up


@pytest.fixture
def slow_line(tmp_path: Path) -> Iterator[tuple[Path, Path, dict[str, str]]]:
    """A `sim up` of the default line at a time scale where one step takes ~0.1-1 s of wall time."""
    with sim_up("emulated", 4000, tmp_path) as running:
        yield running


def _journal(runs: Path) -> Path | None:
    found = sorted(runs.glob(f"*/{JOURNAL}")) if runs.exists() else []
    return found[-1] if found else None


def test_sigkill_mid_step_then_resume_runs_every_step_exactly_once(
    slow_line: tuple[Path, Path, dict[str, str]], tmp_path: Path
) -> None:
    line, eps, env = slow_line
    runs = tmp_path / "runs"
    ctrl = subprocess.Popen([*WAFERLINE, "run", "flow-a", "--wafers", "2", "--line", str(line),
                             "--endpoints", str(eps)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, env=env)
    victim = None
    deadline = time.monotonic() + 60
    while victim is None:  # kill once a few steps are done and a tool step is in a chamber
        assert ctrl.poll() is None, f"run ended before the kill: {ctrl.stderr.read() if ctrl.stderr else ''}"
        assert time.monotonic() < deadline, "no step was ever in a chamber"
        journal = _journal(runs)
        if journal is not None:
            try:
                evs = read_events(journal)
            except JournalError:  # created, schema not written yet
                continue
            done = {e.data["uid"] for e in evs if e.kind == "step_completed"}
            open_ = [e.data["uid"] for e in evs if e.kind == "step_started" and e.data["uid"] not in done]
            if len(done) >= 6 and open_:
                victim = open_[-1]
                ctrl.send_signal(signal.SIGKILL)
        time.sleep(0.005)
    ctrl.wait(10)
    assert ctrl.returncode == -signal.SIGKILL
    run_id = journal.parent.name  # type: ignore[union-attr]

    resumed = subprocess.run([*WAFERLINE, "resume", run_id, "--line", str(line), "--endpoints", str(eps)],
                             capture_output=True, text=True, timeout=120, env=env)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr

    evs = read_events(journal)  # type: ignore[arg-type]
    recovered = [e for e in evs if e.kind == "step_recovered"]
    assert [e.data["uid"] for e in recovered] == [victim]  # asked the tool, did not re-run
    completed = [e for e in evs if e.kind == "step_completed" and e.data.get("tool") != "-"]
    uids = [e.data["uid"] for e in completed]
    assert len(uids) == len(set(uids))
    planned = [u for u in json.loads(json.dumps(evs[0].data["steps"]))]
    tool_steps = {e.data["uid"] for e in evs if e.kind == "step_started"}
    assert set(uids) == tool_steps and set(uids) <= set(planned)

    reply: dict[str, Any] = asyncio.run(send(Path(json.loads(eps.read_text())["control"]), {"op": "jobs"}))
    accepted = [job for jobs in reply["jobs"].values() for job in jobs]
    journaled = [e.data["job_id"] for e in completed]
    assert sorted(accepted) == sorted(journaled)  # each tool ran each step's job once, and nothing else
    summary = json.loads((journal.parent / "summary.json").read_text())  # type: ignore[union-attr]
    assert summary["state"] == "COMPLETE" and summary["claims_ok"]


def test_ctrl_c_is_a_controlled_stop(slow_line: tuple[Path, Path, dict[str, str]], tmp_path: Path) -> None:
    line, eps, env = slow_line
    runs = tmp_path / "runs"
    ctrl = subprocess.Popen([*WAFERLINE, "run", "flow-a", "--wafers", "2", "--line", str(line),
                             "--endpoints", str(eps)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    deadline = time.monotonic() + 60
    while True:  # Ctrl-C while a tool step is in a chamber
        assert ctrl.poll() is None and time.monotonic() < deadline
        journal = _journal(runs)
        try:
            evs = read_events(journal) if journal is not None else []
        except JournalError:
            evs = []
        done = {e.data["uid"] for e in evs if e.kind == "step_completed"}
        if len(done) >= 4 and any(e.kind == "step_started" and e.data["uid"] not in done for e in evs):
            break
        time.sleep(0.005)
    ctrl.send_signal(signal.SIGINT)
    out, err = ctrl.communicate(timeout=60)
    assert ctrl.returncode == 4, out + err  # STOPPED
    evs = read_events(journal)  # type: ignore[arg-type]
    stop = next(e for e in evs if e.kind == "state" and e.data["to"] == "STOPPING")
    assert stop.data["who"] == "operator (Ctrl-C)"
    started = [e.data["uid"] for e in evs if e.kind == "step_started"]
    completed = {e.data["uid"] for e in evs if e.kind == "step_completed"}
    assert set(started) <= completed  # the step in the chamber finished; nothing was left in doubt
    after_stop = [e for e in evs if e.seq > stop.seq and e.kind == "step_started"]
    assert after_stop == []  # nothing new started
    assert [e.data["to"] for e in evs if e.kind == "state"][-1] == "STOPPED"
