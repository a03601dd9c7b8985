"""Every tool kind over every transport, bound by configuration alone.

One line holds each kind on Modbus TCP, Modbus RTU (pty), serial (pty), MQTT and HSMS, all emulated and
speaking the shipped profiles `<kind>-<transport>`. Each pair runs the kind's example recipe
(configs/recipes/<kind>.yaml) end to end through the driver, and a stuck-busy tool times out.
"""

from __future__ import annotations

import re
import string
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from drivers.errors import ToolTimeout
from drivers.factory import make_tool
from drivers.kinds import KINDS
from drivers.line import LineConfig, apply_endpoints, check_profiles
from drivers.profiles import ModbusProfile, SerialProfile, load_profile
from sim_tools.faults import FaultKind, FaultSpec
from sim_tools.line import EmulatedLine

RECIPES = Path(__file__).resolve().parents[1] / "configs" / "recipes"
ADDRESSES: dict[str, dict[str, Any]] = {
    "modbus_tcp": {"transport": "modbus_tcp", "port": 0},
    "modbus_rtu": {"transport": "modbus_rtu", "device": "pty", "baud": 921600},
    "serial": {"transport": "serial", "url": "pty", "baud": 921600},
    "mqtt": {"transport": "mqtt", "prefix": "waferline/matrix/{name}"},
    "hsms": {"transport": "hsms", "port": 0, "timers": {"t3": 2}},
}
PROFILE_TRANSPORT = {"modbus_tcp": "modbus", "modbus_rtu": "modbus", "serial": "serial", "mqtt": "mqtt",
                     "hsms": "hsms"}
PAIRS = [(kind, transport) for kind in sorted(KINDS) for transport in ADDRESSES]


def example_recipe(kind: str) -> Any:
    data = yaml.safe_load((RECIPES / f"{kind}.yaml").read_text())
    return KINDS[kind].recipe_model.model_validate(data)


def matrix_line() -> LineConfig:
    tools = []
    for kind, transport in PAIRS:
        name = f"{kind}-{transport}".replace("_", "-")
        address = dict(ADDRESSES[transport])
        if "prefix" in address:
            address["prefix"] = address["prefix"].format(name=name)
        tools.append({"name": name, "kind": kind, "profile": f"{kind}-{PROFILE_TRANSPORT[transport]}",
                      "address": address, "emulator": {"wire_time": False}})
    line = LineConfig.model_validate({
        "name": "matrix", "time_scale": 50000, "seed": 7,
        "broker": {"embedded": True, "host": "127.0.0.1", "port": 0}, "tools": tools,
    })
    check_profiles(line)
    return line


@pytest.fixture(scope="module")
async def matrix() -> AsyncIterator[tuple[LineConfig, EmulatedLine]]:
    config = matrix_line()
    async with EmulatedLine(config) as line:
        assert line.endpoints is not None
        yield apply_endpoints(config, line.endpoints), line


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_has_an_example_recipe_and_all_profiles(kind: str) -> None:
    example_recipe(kind)  # validates against the kind's ranges
    for transport in ("modbus", "serial", "mqtt", "hsms"):
        assert (RECIPES.parent / "profiles" / f"{kind}-{transport}.yaml").exists()


@pytest.mark.parametrize(("kind", "transport"), PAIRS)
async def test_recipe_runs_over_transport(
    matrix: tuple[LineConfig, EmulatedLine], kind: str, transport: str
) -> None:
    line, emulated = matrix
    cfg = line.tool(f"{kind}-{transport}".replace("_", "-"))
    recipe = example_recipe(kind)
    async with make_tool(cfg, line) as tool:
        before = await tool.status()
        assert before.state == "IDLE" and before.ready
        result = await tool.run(recipe)
        after = await tool.status()
    assert (after.job_id, after.job_outcome) == (result.job_id, "COMPLETED")
    model = emulated.tools[cfg.name]
    profile = load_profile(cfg.profile)
    for name in tool.result_variables():  # what the driver got is what the tool measured
        sent, measured = getattr(result, name), model.results[name]
        if isinstance(sent, float):
            assert sent == pytest.approx(float(measured), rel=1e-6, abs=resolution(profile, name)), name
        else:
            assert sent == measured, name


def resolution(profile: Any, name: str) -> float:
    """The wire resolution the profile documents: a Modbus scale step, a serial `.Nf` precision."""
    if isinstance(profile, ModbusProfile):
        var = profile.variables[name]
        return 0.0 if var.type == "float32" else abs(var.scale) / 2
    if isinstance(profile, SerialProfile):
        for query in profile.queries.values():
            for _, field, spec, _ in string.Formatter().parse(query.reply):
                if field == name and (m := re.fullmatch(r"\.(\d+)f", spec or "")):
                    return 0.5 * 10 ** -int(m.group(1))
    return 0.0


@pytest.mark.parametrize("transport", list(ADDRESSES))
async def test_stuck_busy_tool_times_out(matrix: tuple[LineConfig, EmulatedLine], transport: str) -> None:
    line, emulated = matrix
    cfg = line.tool(f"dicing-saw-{transport}".replace("_", "-"))
    model = emulated.tools[cfg.name]
    model.faults.set(FaultSpec(kind=FaultKind.STUCK_BUSY, at_fraction=0.1))
    try:
        async with make_tool(cfg, line) as tool:
            with pytest.raises(ToolTimeout, match="still EXECUTING"):
                await tool.run(example_recipe("dicing_saw"))
            await tool.abort()
            assert (await tool.status()).job_outcome == "ABORTED"
    finally:
        model.faults.clear()
