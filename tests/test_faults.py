"""Every process fault, seen through a driver over each transport; faults set in the line config.

Link faults (silence, garble, delay, link drop) have their own tests per transport in
test_{modbus,mqtt,serial}_*.py and stuck-busy in test_any_kind_any_transport.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from drivers.errors import ConfigError, JobAborted, ToolAlarm, ToolTimeout
from drivers.factory import make_tool
from drivers.line import LineConfig, apply_endpoints
from sim_tools.faults import FaultKind, FaultSpec
from sim_tools.line import EmulatedLine

RECIPES = Path(__file__).resolve().parents[1] / "configs" / "recipes"
LINE = """
name: faults
time_scale: 20000
seed: 3
broker: {embedded: true, host: 127.0.0.1, port: 0}
tools:
  - name: bonder1
    kind: bonder
    profile: bonder-modbus
    address: {transport: modbus_tcp, port: 0}
  - name: sputter1
    kind: sputterer
    profile: sputterer-mqtt
    address: {transport: mqtt, prefix: waferline/faults/sputter1}
    emulator:
      faults: [{kind: off_target, magnitude: 0.25}]     # set in the line config
  - name: saw1
    kind: dicing_saw
    profile: dicing_saw-serial
    address: {transport: serial, url: pty}
    emulator: {wire_time: false, spread: 0.0}
"""
TOOLS = ["bonder1", "sputter1", "saw1"]
KIND_OF = {"bonder1": "bonder", "sputter1": "sputterer", "saw1": "dicing_saw"}


def recipe(tool: Any) -> Any:
    return tool.recipe_model.model_validate(yaml.safe_load((RECIPES / f"{tool.kind}.yaml").read_text()))


@pytest.fixture(scope="module")
async def line() -> AsyncIterator[tuple[LineConfig, EmulatedLine]]:
    config = LineConfig.model_validate(yaml.safe_load(LINE))
    async with EmulatedLine(config) as emulated:
        assert emulated.endpoints is not None
        yield apply_endpoints(config, emulated.endpoints), emulated


@pytest.fixture
async def fresh(line: tuple[LineConfig, EmulatedLine]) -> AsyncIterator[tuple[LineConfig, EmulatedLine]]:
    """Each test starts from healthy tools with no run-time faults (config faults stay)."""
    yield line
    for name, tool in line[1].tools.items():
        tool.faults.clear()
        if name == "sputter1":  # back to what the line config says
            tool.faults.set(FaultSpec(kind=FaultKind.OFF_TARGET, magnitude=0.25))
        for lock in tool.interlocks:
            tool.set_interlock(lock, True)
        if tool.alarm_id:
            tool.command("reset", {})


async def test_config_fault_off_target_shows_in_the_result(fresh: tuple[LineConfig, EmulatedLine]) -> None:
    config, _ = fresh
    async with make_tool(config.tool("sputter1"), config) as tool:
        result = await tool.run(recipe(tool))
    assert result.film_thickness_nm == pytest.approx(300 * 1.25, rel=0.05)  # recipe asks 300 nm


@pytest.mark.parametrize("name", TOOLS)
async def test_alarm_mid_run_is_tool_alarm_with_profile_text(
    fresh: tuple[LineConfig, EmulatedLine], name: str
) -> None:
    config, emulated = fresh
    emulated.tools[name].faults.set(FaultSpec(kind=FaultKind.ALARM, alarm_id=900, at_fraction=0.3))
    async with make_tool(config.tool(name), config) as tool:
        with pytest.raises(ToolAlarm) as exc:
            await tool.run(recipe(tool))
        assert (exc.value.alarm_id, exc.value.text) == (900, "process alarm")
        status = await tool.status()
        assert status.state == "PAUSE" and status.alarm is not None
        await tool.abort()
        assert (await tool.status()).job_outcome == "ABORTED"


@pytest.mark.parametrize("name", TOOLS)
async def test_door_opening_mid_run_aborts_to_safe_state(
    fresh: tuple[LineConfig, EmulatedLine], name: str
) -> None:
    config, emulated = fresh
    emulated.tools[name].faults.set(FaultSpec(kind=FaultKind.DOOR_OPEN, at_fraction=0.5))
    async with make_tool(config.tool(name), config) as tool:
        with pytest.raises(JobAborted):
            await tool.run(recipe(tool))
        status = await tool.status()
    assert status.interlocks["door_closed"] is False and not status.ready
    assert status.alarm is not None and status.alarm.id == 10
    assert (status.state, status.job_outcome) == ("IDLE", "ABORTED")


@pytest.mark.parametrize(("name", "variable", "ceiling"), [
    ("bonder1", "chuck_temp_c", 250.0),              # the bonder's highest setpoint
    ("sputter1", "deposited_nm", 3000.0),            # the sputterer's thickest film
    ("saw1", "spindle_speed_rpm", 60000.0),          # the saw's highest spindle setpoint
])
async def test_drifting_sensor_reads_out_of_band(
    fresh: tuple[LineConfig, EmulatedLine], name: str, variable: str, ceiling: float
) -> None:
    """A drift walks the sensor of the kind's first run band off (4x) - and out of that band."""
    config, emulated = fresh
    model = emulated.tools[name]
    model.faults.set(FaultSpec(kind=FaultKind.DRIFT, at_fraction=0.0, magnitude=3.0))
    model.faults.set(FaultSpec(kind=FaultKind.STUCK_BUSY, at_fraction=0.95))  # hold the job still
    async with make_tool(config.tool(name), config) as tool:
        assert tool.run_bands[0].variable == variable
        job = asyncio.create_task(tool.run(recipe(tool)))
        try:
            # a condition in tool time, not a wall-clock sleep: the job is held at its stuck point
            # (95 % of the plan), where the drifted reading has aged to its end value
            async with asyncio.timeout(10):
                await model.wait_progress(0.99)
            status = await tool.status()
            assert status.state in ("SETUP", "EXECUTING")
            assert tool.run_bands[0].check(recipe(tool), status.values) is not None  # read 4x its true value
            if variable != "deposited_nm":  # beyond any setpoint of the kind
                assert float(status.values[variable]) > ceiling
        finally:
            await tool.abort()
            with pytest.raises(JobAborted):
                await job


async def test_delay_longer_than_request_timeout_is_timeout(fresh: tuple[LineConfig, EmulatedLine]) -> None:
    config, emulated = fresh
    cfg = config.tool("saw1")
    cfg = cfg.model_copy(update={"timeouts": cfg.timeouts.model_copy(update={"request_s": 0.2})})
    emulated.tools["saw1"].faults.set(FaultSpec(kind=FaultKind.DELAY, delay_s=0.5))
    async with make_tool(cfg, config) as tool:
        with pytest.raises(ToolTimeout):
            await tool.status()
        emulated.tools["saw1"].faults.clear(FaultKind.DELAY)
        await asyncio.sleep(0.5)  # the tool is still answering the late request, as a real one would
        assert (await tool.status()).state == "IDLE"  # the late reply was discarded, not taken


async def test_fault_probability_is_seeded(line: tuple[LineConfig, EmulatedLine]) -> None:
    from sim_tools.faults import FaultSet

    draws = []
    for seed in (5, 5, 6):
        faults = FaultSet([FaultSpec(kind=FaultKind.GARBLE, probability=0.3)], seed)
        draws.append([faults.fires(FaultKind.GARBLE) is not None for _ in range(50)])
    assert draws[0] == draws[1] != draws[2]
    assert 5 < sum(draws[0]) < 30


async def test_bad_fault_in_line_config_names_field(tmp_path: Path) -> None:
    data = yaml.safe_load(LINE)
    data["tools"][2]["emulator"] = {"faults": [{"kind": "gremlins"}]}
    config = LineConfig.model_validate(data)
    with pytest.raises(ConfigError) as exc:
        async with EmulatedLine(config, run_dir=tmp_path):
            pass
    msg = str(exc.value)
    assert "tools.2(saw1).emulator" in msg and "faults.0.kind" in msg and "'silence'" in msg
