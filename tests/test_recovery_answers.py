"""An in-doubt step on each transport, resolved from each answer the tool can give (issue 10.1).

A job goes in doubt the way it does on a floor: the tool stops answering mid-job (silence), the run
holds with the step's outcome unknown. The tool is then made to give one answer, the operator
restarts over the control socket, and the wafer's E90 state must follow the answer:
  COMPLETED -> results recorded, the run goes on and completes;  NOT_STARTED -> the step runs once;
  ABORTED -> the wafer is ABORTED;  a restarted tool (new boot id) -> UNKNOWN, never re-run.
The journal then rebuilds (resume's replay) to the same wafer states as the live run.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from drivers.line import LineConfig, apply_endpoints, load_line
from sequencer.process.flow import expand, load_flow
from sequencer.process.traveler import E90State, new_stack
from sequencer.run.control import RunState
from sequencer.run.journal import read_events
from sequencer.run.remote import send_command
from sequencer.run.resume import replay_journal
from sequencer.run.run import RunOutcome, start_run
from sequencer.run.rundir import JOURNAL
from sim_tools.faults import FaultKind, FaultSpec
from sim_tools.line import EmulatedLine
from sim_tools.model import EmulatedTool
from tests.test_sequencer_e2e import _wait_for_state

TRANSPORTS = {"modbus_tcp": "bonder1", "modbus_rtu": "plater1", "mqtt": "sputter1", "serial": "saw1"}


@pytest.fixture
async def quick() -> AsyncIterator[tuple[LineConfig, EmulatedLine]]:
    """The default line, fast, with a short request timeout: a silent tool is judged in 0.3 s. One per
    test: a silent Modbus TCP tool holds its unanswered requests until its server stops."""
    config = load_line("emulated").model_copy(update={"time_scale": 200000.0})
    tools = [t.model_copy(update={"timeouts": t.timeouts.model_copy(update={"request_s": 0.3})})
             for t in config.tools]
    config = config.model_copy(update={"tools": tools})
    async with EmulatedLine(config) as emulated:
        assert emulated.endpoints is not None
        yield apply_endpoints(config, emulated.endpoints), emulated


def _silence_once_running(model: EmulatedTool) -> Callable[[], None]:
    """A listener: the first time a job runs on the tool, the tool stops answering."""
    armed = {"done": False}

    def listener() -> None:
        if not armed["done"] and model.job_outcome == "RUNNING":
            armed["done"] = True
            model.faults.set(FaultSpec(kind=FaultKind.SILENCE))

    return listener


async def _held_in_doubt(config: LineConfig, model: EmulatedTool, answer: str
                         ) -> tuple[asyncio.Task[RunOutcome], Path, list[int]]:
    """Start Flow A (2 wafers) and return once it is HELD with a step in doubt on `model`'s tool."""
    started: list[int] = []

    def observer(event: str, _step: Any, info: dict[str, Any]) -> None:
        if event != "started" or info["tool"] != model.name or started:
            return
        started.append(info["job_id"])
        if answer == "NOT_STARTED":  # the start command is lost on its way: the tool never sees it
            model.faults.set(FaultSpec(kind=FaultKind.SILENCE))
        elif answer == "ABORTED":  # the job stays in the chamber until someone aborts it
            model.faults.set(FaultSpec(kind=FaultKind.STUCK_BUSY, at_fraction=0.5))

    if answer != "NOT_STARTED":
        model.add_listener(_silence_once_running(model))
    task = asyncio.create_task(start_run("flow-a", config, wafers=2, observer=observer))
    run_dir = await _wait_for_state(config_runs(), "HELD")
    reply = await send_command(run_dir, "status", "test")
    assert "outcome_unknown" in reply["held_reason"], reply
    return task, run_dir, started


def config_runs() -> Path:
    import os

    return Path(os.environ["WAFERLINE_RUNS_DIR"])


def _replayed_states(outcome: RunOutcome) -> list[E90State]:
    """Wafer states as `resume` rebuilds them from the journal alone."""
    flow = load_flow("flow-a")
    stack = new_stack(flow, 2, outcome.stack.stack_id)
    replay_journal(read_events(outcome.directory / JOURNAL), expand(flow, 2), [stack])
    return [w.state for w in stack.wafers]


def _recovered(outcome: RunOutcome) -> list[str]:
    return [e.data["outcome"] for e in read_events(outcome.directory / JOURNAL) if e.kind == "step_recovered"]


async def _restart_to_completion(task: asyncio.Task[RunOutcome], run_dir: Path, answer: str) -> None:
    """Restart the HELD run; it must complete with both wafers PROCESSED, live and as resume rebuilds."""
    assert (await send_command(run_dir, "restart", "test", "the tool answers again"))["ok"]
    outcome = await asyncio.wait_for(task, 60)
    assert outcome.state is RunState.COMPLETE and outcome.claims_ok
    assert [w.state for w in outcome.stack.wafers] == [E90State.PROCESSED] * 2
    assert _replayed_states(outcome) == [E90State.PROCESSED] * 2
    assert _recovered(outcome) == [answer]


async def _restart_to_hold(run_dir: Path) -> str:
    """Restart the HELD run and return why it is HELD again."""
    assert (await send_command(run_dir, "restart", "test", "the tool answers again"))["ok"]
    await _wait_for_state(run_dir.parent, "HELD")
    return str((await send_command(run_dir, "status", "test"))["held_reason"])


@pytest.mark.parametrize("transport", list(TRANSPORTS))
async def test_completed_answer_records_the_step_and_the_run_completes(
    quick: tuple[LineConfig, EmulatedLine], runs: Path, transport: str
) -> None:
    config, emulated = quick
    model = emulated.tools[TRANSPORTS[transport]]
    task, run_dir, started = await _held_in_doubt(config, model, "COMPLETED")
    async with asyncio.timeout(10):
        await model.wait_until(lambda t: t.job_outcome == "COMPLETED")
    model.faults.clear()
    await _restart_to_completion(task, run_dir, "COMPLETED")
    assert model.job_log.count(started[0]) == 1


@pytest.mark.parametrize("transport", list(TRANSPORTS))
async def test_not_started_answer_runs_the_step_once(
    quick: tuple[LineConfig, EmulatedLine], runs: Path, transport: str
) -> None:
    config, emulated = quick
    model = emulated.tools[TRANSPORTS[transport]]
    jobs_before = len(model.job_log)
    task, run_dir, started = await _held_in_doubt(config, model, "NOT_STARTED")
    assert model.job_log[jobs_before:] == []  # the lost start never reached the tool
    model.faults.clear()
    await _restart_to_completion(task, run_dir, "NOT_STARTED")
    assert started[0] not in model.job_log


@pytest.mark.parametrize("transport", list(TRANSPORTS))
async def test_aborted_answer_aborts_the_wafer(
    quick: tuple[LineConfig, EmulatedLine], runs: Path, transport: str
) -> None:
    config, emulated = quick
    model = emulated.tools[TRANSPORTS[transport]]
    task, run_dir, started = await _held_in_doubt(config, model, "ABORTED")
    model.command("abort", {})  # the tool's own operator aborted the job while the link was down
    model.faults.clear()
    held = await _restart_to_hold(run_dir)
    assert "job_ended" in held, held
    await send_command(run_dir, "abort", "test", "wafer aborted on the tool")
    outcome = await asyncio.wait_for(task, 30)
    assert _recovered(outcome) == ["ABORTED"]
    victim = [w.state for w in outcome.stack.wafers]
    assert E90State.ABORTED in victim and E90State.UNKNOWN not in victim
    assert _replayed_states(outcome) == victim
    assert model.job_log.count(started[0]) == 1


@pytest.mark.parametrize("transport", list(TRANSPORTS))
async def test_restarted_tool_cannot_vouch_and_the_step_is_never_rerun(
    quick: tuple[LineConfig, EmulatedLine], runs: Path, transport: str
) -> None:
    config, emulated = quick
    model = emulated.tools[TRANSPORTS[transport]]
    task, run_dir, _started = await _held_in_doubt(config, model, "UNKNOWN")
    model.power_cycle()  # the tool lost power mid-job: it now shows no job and a new boot id
    model.faults.clear()
    jobs = len(model.job_log)
    held = await _restart_to_hold(run_dir)
    assert "outcome_unknown" in held and "restarted" in held, held
    assert len(model.job_log) == jobs  # nothing was sent again
    await send_command(run_dir, "abort", "test", "operator takes the wafer out")
    outcome = await asyncio.wait_for(task, 30)
    assert E90State.UNKNOWN in [w.state for w in outcome.stack.wafers]
    assert _replayed_states(outcome) == [w.state for w in outcome.stack.wafers]
