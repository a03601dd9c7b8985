"""Golden traces: recorded driver traffic replayed without any tool.

A trace (tests/golden/<case>.jsonl) is what the driver read and sent during a real run over the
real protocol. Replaying it checks that the driver still asks exactly the same things in the same
order and turns the same replies into the same result or typed error. After an intended change in
driver behaviour, re-record with: WAFERLINE_REGEN_GOLDEN=1 python3 -m pytest tests/test_golden_traces.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from drivers.capture import CaptureChannel, ReplayChannel, TraceMismatch
from drivers.errors import CommandRejected, ToolAlarm
from drivers.factory import make_tool
from drivers.kinds import KINDS
from drivers.line import LineConfig, apply_endpoints
from drivers.profiles import load_profile
from sim_tools.faults import FaultKind, FaultSpec
from sim_tools.line import EmulatedLine

GOLDEN = Path(__file__).parent / "golden"
RECIPES = Path(__file__).resolve().parents[1] / "configs" / "recipes"
JOB_ID = 4242
# case: (tool, kind, profile, address, what the emulator does, the error the driver must raise)
CASES: dict[str, tuple[str, str, str, dict[str, Any], str | None, type[Exception] | None]] = {
    "bonder-modbus-run": ("bonder1", "bonder", "bonder-modbus", {"transport": "modbus_tcp", "port": 0},
                          None, None),
    "sputterer-mqtt-run": ("sputter1", "sputterer", "sputterer-mqtt",
                           {"transport": "mqtt", "prefix": "waferline/golden/sputter1"}, None, None),
    "dicing_saw-serial-run": ("saw1", "dicing_saw", "dicing_saw-serial",
                              {"transport": "serial", "url": "pty"}, None, None),
    "dicing_saw-serial-door-open": ("saw1", "dicing_saw", "dicing_saw-serial",
                                    {"transport": "serial", "url": "pty"}, "door_open", CommandRejected),
    "plater-modbus-alarm": ("plater1", "plater", "plater-modbus", {"transport": "modbus_tcp", "port": 0},
                            "alarm", ToolAlarm),
}


def recipe(kind: str) -> Any:
    return KINDS[kind].recipe_model.model_validate(yaml.safe_load((RECIPES / f"{kind}.yaml").read_text()))


async def record(case: str) -> None:
    name, kind, profile, address, fault, error = CASES[case]
    config = LineConfig.model_validate({
        "name": "golden", "time_scale": 20000, "broker": {"embedded": True, "port": 0},
        "tools": [{"name": name, "kind": kind, "profile": profile, "address": address,
                   "emulator": {"seed": 1, "wire_time": False}}],
    })
    trace = GOLDEN / f"{case}.jsonl"
    trace.unlink(missing_ok=True)
    async with EmulatedLine(config) as line:
        assert line.endpoints is not None
        live = apply_endpoints(config, line.endpoints)
        model = line.tools[name]
        if fault == "door_open":
            model.set_interlock("door_closed", False)
        elif fault == "alarm":
            model.faults.set(FaultSpec(kind=FaultKind.ALARM, alarm_id=900, at_fraction=0.5))
        tool = make_tool(live.tool(name), live)
        tool.channel = CaptureChannel(tool.channel, trace)
        async with tool:
            if error is None:
                await tool.run(recipe(kind), job_id=JOB_ID)
            else:
                with pytest.raises(error):
                    await tool.run(recipe(kind), job_id=JOB_ID)
            if fault == "alarm":
                await tool.abort()


@pytest.mark.parametrize("case", sorted(CASES))
async def test_golden_trace_replays(case: str) -> None:
    name, kind, profile, _address, _fault, error = CASES[case]
    trace = GOLDEN / f"{case}.jsonl"
    if os.environ.get("WAFERLINE_REGEN_GOLDEN") or not trace.exists():
        await record(case)
    channel = ReplayChannel(load_profile(profile), trace)
    tool = KINDS[kind](name, channel, time_scale=20000, poll_interval_s=0.0)
    async with tool:
        if error is None:
            result = await tool.run(recipe(kind), job_id=JOB_ID)
            last = json.loads(trace.read_text().splitlines()[-1])
            assert result.model_dump(exclude={"tool", "job_id"}) == last["values"]
        else:
            with pytest.raises(error):
                await tool.run(recipe(kind), job_id=JOB_ID)
            if case.endswith("alarm"):
                await tool.abort()
    assert channel.remaining == 0  # the driver consumed the whole trace: no request went missing


async def test_a_changed_driver_fails_the_golden_trace() -> None:
    channel = ReplayChannel(load_profile("dicing_saw-serial"), GOLDEN / "dicing_saw-serial-run.jsonl")
    tool = KINDS["dicing_saw"]("saw1", channel, poll_interval_s=0.0)
    changed = recipe("dicing_saw").model_copy(update={"feed_mm_s": 12.0})
    async with tool:
        with pytest.raises(TraceMismatch, match="feed_mm_s"):
            await tool.run(changed, job_id=JOB_ID)
