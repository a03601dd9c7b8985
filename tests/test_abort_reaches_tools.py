"""`waferline abort RUN` reaches every tool holding a job of the run, in doubt or not (issue 10.4).

The job goes in doubt the way it did in the campaign (the tool falls silent mid-job, the run holds);
the operator aborts the run with the CLI. The abort must reach the tool over its real protocol, the
tool must be read back out of EXECUTING, and the journal must say so - or say that it could not.
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from drivers.line import LineConfig
from sequencer.process.traveler import E90State
from sequencer.run.control import RunState
from sequencer.run.journal import read_events
from sequencer.run.rundir import JOURNAL
from sim_tools.faults import FaultKind, FaultSpec
from sim_tools.line import EmulatedLine
from tests.fixtures.sequencer import WAFERLINE
from tests.test_recovery_answers import TRANSPORTS, _held_in_doubt, quick  # noqa: F401 (fixture)


async def _cli_abort(run_id: str) -> tuple[int, str]:
    """The operator's `waferline abort`, as a process: the run's socket is served by this event loop."""
    proc = await asyncio.create_subprocess_exec(*WAFERLINE, "abort", run_id, "--why", "operator aborts",
                                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


@pytest.mark.parametrize("transport", list(TRANSPORTS))
async def test_abort_reaches_an_in_doubt_job_and_reads_the_tool_back(
    quick: tuple[LineConfig, EmulatedLine], runs: Path, transport: str  # noqa: F811
) -> None:
    config, emulated = quick
    model = emulated.tools[TRANSPORTS[transport]]
    task, run_dir, started = await _held_in_doubt(config, model, "ABORTED")  # stuck in the chamber
    assert model.state in ("SETUP", "EXECUTING") and model.job_id == started[0]
    model.faults.clear(FaultKind.SILENCE)  # the link is back; the job is still running on the tool
    code, said = await _cli_abort(run_dir.name)
    assert code == 0, said
    outcome = await asyncio.wait_for(task, 30)
    assert outcome.state is RunState.ABORTED
    assert (model.state, model.job_id, model.job_outcome) == ("IDLE", started[0], "ABORTED")
    evs = read_events(outcome.directory / JOURNAL)
    aborts = [e.data for e in evs if e.kind == "tool_abort"]
    assert [(a["tool"], a["confirmed"]) for a in aborts] == [(model.name, True)]
    assert E90State.ABORTED in [w.state for w in outcome.stack.wafers]
    assert E90State.UNKNOWN not in [w.state for w in outcome.stack.wafers]


async def test_abort_of_a_tool_that_stays_silent_is_reported_unconfirmed(
    quick: tuple[LineConfig, EmulatedLine], runs: Path  # noqa: F811
) -> None:
    config, emulated = quick
    model = emulated.tools["saw1"]
    task, run_dir, _ = await _held_in_doubt(config, model, "ABORTED")
    model.faults.set(FaultSpec(kind=FaultKind.SILENCE))  # still silent: the abort cannot be confirmed
    code, said = await _cli_abort(run_dir.name)
    assert code == 0, said
    outcome = await asyncio.wait_for(task, 40)
    assert outcome.state is RunState.ABORTED
    aborts = [e.data for e in read_events(outcome.directory / JOURNAL) if e.kind == "tool_abort"]
    assert [(a["tool"], a["confirmed"]) for a in aborts] == [("saw1", False)]
    assert model.state in ("SETUP", "EXECUTING")  # the truth the journal now tells: the tool never heard it
    assert E90State.UNKNOWN in [w.state for w in outcome.stack.wafers]
