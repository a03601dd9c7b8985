"""A hardware-in-loop line: one tool is 'real' (not emulated by the line), the rest are emulated.

The real bonder here is an independently started emulator on a fixed loopback port - to waferline it
is just a Modbus device at a configured address, exactly as a bench bonder would be.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from drivers.addresses import ModbusTcpAddress
from drivers.line import LINE_DIR, LineConfig
from drivers.profiles import ModbusProfile, load_profile
from sequencer.run.control import RunState
from sequencer.run.run import start_run
from sim_tools.clock import VirtualClock
from sim_tools.model import EmulatedTool
from sim_tools.physics import PHYSICS
from sim_tools.servers.modbus import ModbusToolServer
from tests.fixtures.common import free_port
from waferline.live import live_line


async def test_run_drives_the_real_tool_and_emulates_only_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WAFERLINE_RUNS_DIR", str(tmp_path / "runs"))
    scale = 100000.0
    profile = load_profile("bonder-modbus")
    assert isinstance(profile, ModbusProfile)
    bench_bonder = EmulatedTool("bench-bonder", PHYSICS["bonder"](), VirtualClock(scale), seed=5)
    server = ModbusToolServer(bench_bonder, profile, ModbusTcpAddress(port=free_port()))
    address = await server.start()
    try:
        data = yaml.safe_load((LINE_DIR / "emulated.yaml").read_text())
        data["time_scale"] = scale
        bonder = next(t for t in data["tools"] if t["name"] == "bonder1")
        bonder["emulated"] = False
        bonder["address"] = address.model_dump()
        config = LineConfig.model_validate(data)
        async with live_line(config, None) as (live, source):
            assert source == "embedded emulators"
            assert live.tool("bonder1").address == address  # connected at its configured address
            outcome = await start_run("flow-a", live, wafers=3)
    finally:
        await server.stop()
        await bench_bonder.close()
    assert outcome.state is RunState.COMPLETE and outcome.claims_ok
    assert len(bench_bonder.job_log) == 2  # the two bonds (wafers 2 and 3) ran on the bench bonder
