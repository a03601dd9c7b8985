"""A door that opens between two block reads of one Modbus status must still abort (issue 10.2).

A Modbus status is several reads (discrete inputs, holding, input registers). The test opens the door
on the emulator right after it served the discrete inputs of a poll, so the driver sees the torn
status `door_closed=true` together with the door's alarm 10. Alarm 10 is a safety-class alarm in the
profile, so the verdict is the safety action whatever the input bit says: the run ABORTS (before:
HELD on `tool_alarm`). Deterministic: the tear is placed by the emulator's datastore hook, not by timing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest

from drivers.line import LineConfig
from drivers.profiles.base import Value
from sequencer.run.control import RunState
from sequencer.run.journal import read_events
from sequencer.run.run import start_run
from sequencer.run.rundir import JOURNAL
from sim_tools.faults import FaultKind, FaultSpec
from sim_tools.line import EmulatedLine
from sim_tools.model import EmulatedTool


def tear_after_interlock_read(model: EmulatedTool) -> list[dict[str, Value]]:
    """Open the door just after the tool served a read of its interlock inputs mid-job; returns the
    values that read carried (door still closed), so the test can show the tear happened."""
    served: list[dict[str, Value]] = []
    original = model.read

    def read(names: Sequence[str]) -> dict[str, Value]:
        values = original(names)
        if not served and "door_closed" in names and model.job_outcome == "RUNNING":
            served.append(values)
            model.set_interlock("door_closed", False)  # between this block read and the next
        return values

    model.read = read  # type: ignore[method-assign]
    return served


@pytest.mark.parametrize("name", ["bonder1", "plater1"])  # Modbus TCP and Modbus RTU
async def test_torn_status_with_the_door_alarm_aborts(
    healthy: tuple[LineConfig, EmulatedLine], runs: Path, name: str
) -> None:
    config, emulated = healthy
    model = emulated.tools[name]
    model.faults.set(FaultSpec(kind=FaultKind.STUCK_BUSY, at_fraction=0.5))  # the job stays in the chamber
    served = tear_after_interlock_read(model)
    try:
        outcome = await asyncio.wait_for(start_run("flow-a", config, wafers=2), 20)
    finally:
        del model.read  # back to the class's read
    assert served and served[0]["door_closed"] is True  # the poll's interlock block said "closed"
    assert outcome.state is RunState.ABORTED, outcome.held_reason
    trips = [e.data for e in read_events(outcome.directory / JOURNAL) if e.kind == "interlock_tripped"]
    assert [(t["tool"], t["interlock"], t["action"]) for t in trips] == [(name, "safety_alarm", "abort")]
    assert "alarm 10" in trips[0]["reason"]
    assert "ABORTED" in [w.state for w in outcome.stack.wafers]
