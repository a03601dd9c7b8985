"""kill -9 the controller of a lot while several stacks have jobs in chambers; resume; audit on the tools.

The pooled line runs in its own `waferline sim up` process so the tools outlive the controller.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from drivers.line import LINE_DIR
from sequencer.journal import JournalError, read_events
from sequencer.rundir import JOURNAL
from sim_tools.control import send

WAFERLINE = [sys.executable, "-m", "waferline.cli"]


@pytest.fixture
def pooled_sim(tmp_path: Path) -> Iterator[tuple[Path, Path, dict[str, str]]]:
    data = yaml.safe_load((LINE_DIR / "pools.yaml").read_text())
    data["time_scale"] = 20000
    line = tmp_path / "line.yaml"
    line.write_text(yaml.safe_dump(data))
    eps = tmp_path / "endpoints.json"
    env = {**os.environ, "WAFERLINE_RUNS_DIR": str(tmp_path / "runs")}
    sim = subprocess.Popen([*WAFERLINE, "sim", "up", "--line", str(line), "--endpoints-file", str(eps),
                            "--run-dir", str(tmp_path / "sim")], stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 30
    while not eps.exists():
        assert sim.poll() is None and time.monotonic() < deadline, sim.stderr.read() if sim.stderr else ""
        time.sleep(0.05)
    yield line, eps, env
    sim.send_signal(signal.SIGTERM)
    sim.wait(20)


def test_sigkill_of_a_lot_then_resume_runs_every_step_of_every_stack_exactly_once(
    pooled_sim: tuple[Path, Path, dict[str, str]], tmp_path: Path
) -> None:
    line, eps, env = pooled_sim
    runs = tmp_path / "runs"
    ctrl = subprocess.Popen([*WAFERLINE, "run", "flow-a", "--wafers", "2", "--stacks", "3", "--line",
                             str(line), "--endpoints", str(eps)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=env)
    victims: set[tuple[str, str]] = set()
    deadline = time.monotonic() + 60
    journal: Path | None = None
    while not victims:  # kill with two or more jobs in chambers, some steps done
        assert ctrl.poll() is None, f"run ended before the kill: {ctrl.stderr.read() if ctrl.stderr else ''}"
        assert time.monotonic() < deadline, "never two jobs in chambers at once"
        found = sorted(runs.glob(f"*/{JOURNAL}")) if runs.exists() else []
        journal = found[-1] if found else None
        if journal is not None:
            try:
                evs = read_events(journal)
            except JournalError:
                continue
            done = {(e.data["stack"], e.data["uid"]) for e in evs if e.kind == "step_completed"}
            open_ = {(e.data["stack"], e.data["uid"]) for e in evs if e.kind == "step_started"} - done
            if len(done) >= 12 and len(open_) >= 2:
                ctrl.send_signal(signal.SIGKILL)
                victims = open_
        time.sleep(0.002)
    ctrl.wait(10)
    assert ctrl.returncode == -signal.SIGKILL and journal is not None
    resumed = subprocess.run([*WAFERLINE, "resume", journal.parent.name, "--line", str(line), "--endpoints",
                              str(eps)], capture_output=True, text=True, timeout=120, env=env)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr

    evs = read_events(journal)
    recovered = {(e.data["stack"], e.data["uid"]) for e in evs if e.kind == "step_recovered"}
    assert victims <= recovered  # every job in a chamber at the kill was asked about, not re-run
    completed = [e for e in evs if e.kind == "step_completed" and e.data.get("tool") != "-"]
    keys = Counter((e.data["stack"], e.data["uid"]) for e in completed)
    assert max(keys.values()) == 1
    planned = evs[0].data["steps"]
    stacks = evs[0].data["stacks"]
    started = {(e.data["stack"], e.data["uid"]) for e in evs if e.kind == "step_started"}
    assert set(keys) == started and {u for _s, u in keys} <= set(planned) and len(stacks) == 3
    reply: dict[str, Any] = asyncio.run(send(Path(json.loads(eps.read_text())["control"]), {"op": "jobs"}))
    accepted = sorted(job for jobs in reply["jobs"].values() for job in jobs)
    assert accepted == sorted(e.data["job_id"] for e in completed)  # one job per step, nothing else
    summary = json.loads((journal.parent / "summary.json").read_text())
    assert summary["state"] == "COMPLETE" and all(s["claims_ok"] for s in summary["stacks"])
