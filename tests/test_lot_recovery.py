"""kill -9 the controller of a lot while several stacks have jobs in chambers; resume; audit on the tools.

The pooled line runs in its own `waferline sim up` process so the tools outlive the controller.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sequencer.run.journal import JournalError, read_events
from sequencer.run.rundir import JOURNAL
from sim_tools.control import send
from tests.fixtures.sequencer import WAFERLINE, sim_up


@pytest.fixture
def pooled_sim(tmp_path: Path) -> Iterator[tuple[Path, Path, dict[str, str]]]:
    """A `sim up` of the pooled line in its own process."""
    with sim_up("pools", 20000, tmp_path) as running:
        yield running


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
    at_kill = read_events(journal)  # a job may have ended between the read above and the kill
    ended = {(e.data["stack"], e.data["uid"]) for e in at_kill if e.kind in ("step_completed", "step_failed")}
    victims = {(e.data["stack"], e.data["uid"]) for e in at_kill if e.kind == "step_started"} - ended
    assert len(victims) >= 1
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
