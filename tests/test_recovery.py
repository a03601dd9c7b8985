"""kill -9 the controller mid-step, resume, and audit on the tools that every step ran exactly once.

The emulators run in their own `waferline sim up` process so they outlive the controller, exactly as
real tools do; the audit reads the job ids each tool accepted (sim control socket, `jobs`).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from drivers.line import LINE_DIR
from sequencer.run.journal import JournalError, read_events
from sequencer.run.rundir import JOURNAL
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


def kill_mid_step(ctrl: subprocess.Popen[str], runs: Path, sig: int = signal.SIGKILL,
                  done_before: int = 6) -> tuple[Path, str]:
    """Send `sig` to the controller once `done_before` steps are done and a tool step is in a chamber;
    returns the journal and that step's uid."""
    deadline = time.monotonic() + 60
    while True:
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
            if len(done) >= done_before and open_:
                ctrl.send_signal(sig)
                return journal, open_[-1]
        time.sleep(0.005)


@pytest.fixture(params=["emulated", "fab"])
def slow_any_line(
    request: pytest.FixtureRequest, tmp_path: Path,
) -> Iterator[tuple[Path, Path, dict[str, str]]]:
    """The default line and the all-HSMS fab line: on the fab line the kill drops every GEM tool's
    HSMS link mid-job, and the resumed controller must ask the tool (S1F3), never re-run."""
    with sim_up(request.param, 4000, tmp_path) as running:
        yield running


def test_sigkill_mid_step_then_resume_runs_every_step_exactly_once(
    slow_any_line: tuple[Path, Path, dict[str, str]], tmp_path: Path
) -> None:
    line, eps, env = slow_any_line
    runs = tmp_path / "runs"
    ctrl = subprocess.Popen([*WAFERLINE, "run", "flow-a", "--wafers", "2", "--line", str(line),
                             "--endpoints", str(eps)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, env=env)
    journal, victim = kill_mid_step(ctrl, runs)
    ctrl.wait(10)
    assert ctrl.returncode == -signal.SIGKILL
    run_id = journal.parent.name

    resumed = subprocess.run([*WAFERLINE, "resume", run_id, "--line", str(line), "--endpoints", str(eps)],
                             capture_output=True, text=True, timeout=120, env=env)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr

    evs = read_events(journal)
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
    summary = json.loads((journal.parent / "summary.json").read_text())
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


def test_sigkill_on_the_embedded_line_then_resume_never_reruns(tmp_path: Path) -> None:
    """The embedded emulators die with the controller; the fresh ones resume starts have a new boot
    id, so no in-doubt step is judged "never started" from them: it becomes UNKNOWN, and resume says
    plainly that the emulators were lost (issue 10.6)."""
    data = yaml.safe_load((LINE_DIR / "emulated.yaml").read_text())
    data["time_scale"] = 4000
    line = tmp_path / "line.yaml"
    line.write_text(yaml.safe_dump(data))
    env = {**os.environ, "WAFERLINE_RUNS_DIR": str(tmp_path / "runs")}
    ctrl = subprocess.Popen([*WAFERLINE, "run", "flow-a", "--wafers", "2", "--line", str(line)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    journal, victim = kill_mid_step(ctrl, tmp_path / "runs", done_before=2)
    ctrl.wait(10)
    resumed = subprocess.run([*WAFERLINE, "resume", journal.parent.name, "--line", str(line),
                              "--on-hold", "fail"],
                             capture_output=True, text=True, timeout=120, env=env)
    said = " ".join(resumed.stdout.split())
    assert resumed.returncode == 3, resumed.stdout + resumed.stderr  # HELD for the operator
    assert "were lost with it" in said
    evs = read_events(journal)
    unknown = [e.data for e in evs if e.kind == "step_unknown"]
    assert [u["uid"] for u in unknown] == [victim] and "restarted" in unknown[0]["reason"]
    assert [e.data["uid"] for e in evs if e.kind == "step_started"].count(victim) == 1  # never re-run
    assert any(e.kind == "note" and "lost with it" in e.data["text"] for e in evs)
