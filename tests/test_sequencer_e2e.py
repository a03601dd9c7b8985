"""Flows A and B end to end on the emulated line over the real protocols, with run control and faults."""

from __future__ import annotations

import asyncio
import getpass
from pathlib import Path
from typing import Any

import pytest

from drivers.line import LineConfig
from sequencer.run.control import RunState
from sequencer.run.journal import read_events
from sequencer.run.remote import send_command
from sequencer.run.run import RunOutcome, start_run
from sequencer.run.rundir import JOURNAL
from sim_tools.faults import FaultKind, FaultSpec
from sim_tools.line import EmulatedLine


def events(outcome: RunOutcome) -> list[Any]:
    return read_events(outcome.directory / JOURNAL)


@pytest.mark.parametrize("flow", ["flow-a", "flow-b"])
@pytest.mark.parametrize("wafers", [2, 4, 8])
async def test_flow_completes_and_passes_claims(
    healthy: tuple[LineConfig, EmulatedLine], runs: Path, flow: str, wafers: int
) -> None:
    config, _ = healthy
    outcome = await start_run(flow, config, wafers=wafers)
    assert outcome.state is RunState.COMPLETE, outcome.held_reason
    assert outcome.claims_ok, [c for c in outcome.claims if not c.ok]
    assert len(outcome.stack.wafers) == wafers
    assert {str(w.state) for w in outcome.stack.wafers} == {"PROCESSED"}
    evs = events(outcome)
    started = [e.data["uid"] for e in evs if e.kind == "step_started"]
    done = [e.data["uid"] for e in evs if e.kind == "step_completed" and e.data.get("tool") != "-"]
    assert started == done and len(set(done)) == len(done)  # every tool step exactly once
    assert (outcome.directory / "traveler.json").exists() and (outcome.directory / "summary.json").exists()


async def test_alarm_mid_step_holds_with_reason(healthy: tuple[LineConfig, EmulatedLine], runs: Path) -> None:
    config, emulated = healthy
    emulated.tools["bonder1"].faults.set(FaultSpec(kind=FaultKind.ALARM, alarm_id=101, at_fraction=0.5))
    task = asyncio.create_task(start_run("flow-a", config, wafers=2))
    run_dir = await _wait_for_state(runs, "HELD")
    reply = await send_command(run_dir, "status", "test")
    assert "tool_alarm" in reply["held_reason"] and "101" in reply["held_reason"]
    await send_command(run_dir, "abort", "test", "scrap the stack")
    outcome = await asyncio.wait_for(task, 10)
    assert outcome.state is RunState.ABORTED


async def test_door_open_mid_step_aborts(healthy: tuple[LineConfig, EmulatedLine], runs: Path) -> None:
    config, emulated = healthy
    emulated.tools["etcher1"].faults.set(FaultSpec(kind=FaultKind.DOOR_OPEN, at_fraction=0.5))
    outcome = await asyncio.wait_for(start_run("flow-a", config, wafers=2), 30)
    assert outcome.state is RunState.ABORTED
    tripped = [e for e in events(outcome) if e.kind == "interlock_tripped"]
    assert tripped and tripped[0].data["interlock"] == "door_closed_mid_run"
    assert "ABORTED" in {str(w.state) for w in outcome.stack.wafers}


async def test_silent_tool_holds_with_unknown_outcome(
    healthy: tuple[LineConfig, EmulatedLine], runs: Path
) -> None:
    config, emulated = healthy
    saw = emulated.tools["saw1"]
    saw.faults.set(FaultSpec(kind=FaultKind.SILENCE))
    task = asyncio.create_task(start_run("flow-a", config, wafers=2))
    run_dir = await _wait_for_state(runs, "HELD", limit_s=60)
    reply = await send_command(run_dir, "status", "test")
    assert "saw1" in reply["held_reason"]
    saw.faults.clear()
    await send_command(run_dir, "restart", "test", "link back")
    outcome = await asyncio.wait_for(task, 30)
    assert outcome.state is RunState.COMPLETE, outcome.held_reason


async def test_hold_and_restart_by_operator(healthy: tuple[LineConfig, EmulatedLine], runs: Path) -> None:
    config, _ = healthy
    slow = config.model_copy(update={"time_scale": 20000.0})
    task = asyncio.create_task(start_run("flow-b", slow, wafers=2))
    run_dir = await _wait_for_state(runs, "EXECUTE")
    assert (await send_command(run_dir, "hold", "alice", "check the bonder"))["ok"]
    await _wait_for_state(runs, "HELD")
    held = await send_command(run_dir, "status", "test")
    assert held["held_reason"] == f"{getpass.getuser()} (alice): check the bonder"
    assert (await send_command(run_dir, "restart", "alice", "checked"))["ok"]
    outcome = await asyncio.wait_for(task, 60)
    assert outcome.state is RunState.COMPLETE
    transitions = [(e.data["to"], e.data["who"]) for e in events(outcome) if e.kind == "state"]
    me = f"{getpass.getuser()} (alice)"
    assert ("HOLDING", me) in transitions and ("UNHOLDING", me) in transitions


async def test_refused_permissive_holds_then_restart_completes(
    healthy: tuple[LineConfig, EmulatedLine], runs: Path
) -> None:
    config, emulated = healthy
    emulated.tools["mounter1"].set_interlock("n2_ok", False)  # nitrogen off before ball reflow
    task = asyncio.create_task(start_run("flow-a", config, wafers=2))
    run_dir = await _wait_for_state(runs, "HELD")
    reply = await send_command(run_dir, "status", "test")
    assert "n2_supply_on" in reply["held_reason"] and "n2_ok" in reply["held_reason"]
    assert (await send_command(run_dir, "restart", "op", "still off"))["ok"]
    await _wait_for_state(runs, "HELD")  # re-checked: still refused
    emulated.tools["mounter1"].set_interlock("n2_ok", True)
    assert (await send_command(run_dir, "restart", "op", "N2 valve opened"))["ok"]
    outcome = await asyncio.wait_for(task, 30)
    assert outcome.state is RunState.COMPLETE and outcome.claims_ok
    refused = [e for e in events(outcome) if e.kind == "permissive_refused"]
    assert len(refused) == 2 and refused[0].data["interlock"] == "n2_supply_on"


def _newest(runs: Path) -> tuple[Path | None, str | None]:
    """The newest run directory and the last state its journal shows."""
    dirs = sorted(p for p in runs.iterdir() if (p / JOURNAL).exists())
    if not dirs:
        return None, None
    states = [e.data["to"] for e in read_events(dirs[-1] / JOURNAL) if e.kind == "state"]
    return dirs[-1], states[-1] if states else None


async def _wait_for_state(runs: Path, state: str, limit_s: float = 30) -> Path:
    async with asyncio.timeout(limit_s):
        while True:
            newest, last = _newest(runs)
            if newest is not None and last == state:
                return newest
            await asyncio.sleep(0.02)
