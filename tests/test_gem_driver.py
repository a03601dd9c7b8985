"""The GEM host channel against the GEM emulator over real sockets: typed errors for every failure
(garbled reply, T3, S9, HCACK, ONLACK), jobs that end by S6F11 rather than by a poll, the polling
fallback, process programs (S7F3 + PP-SELECT), trace data (S2F23 -> S6F1), and a link that drops or
is separated mid-job without the job being re-run."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from drivers.channel import Timeouts
from drivers.errors import CommandRejected, ProtocolError, ToolConnectionError, ToolTimeout
from drivers.factory import make_tool
from drivers.line import LineConfig, apply_endpoints, check_profiles
from drivers.tool import Tool
from drivers.transports.gem import HsmsChannel
from drivers.transports.secs2 import Item
from sim_tools.faults import FaultKind, FaultSpec
from sim_tools.line import EmulatedLine
from sim_tools.model import EmulatedTool
from sim_tools.servers.gem import GemToolServer
from tests.test_any_kind_any_transport import example_recipe

TOOLS: list[dict[str, Any]] = [
    {"name": "etcher1", "kind": "etcher", "profile": "etcher-hsms", "poll_interval_s": 60,
     "address": {"transport": "hsms", "port": 0, "timers": {"t3": 0.5}}},
    {"name": "etcher2", "kind": "etcher", "profile": "etcher-hsms", "poll_interval_s": 0.01,
     "address": {"transport": "hsms", "port": 0, "events": False, "timers": {"t3": 0.5}}},
    {"name": "coater1", "kind": "coater", "profile": "coater-hsms-pp", "poll_interval_s": 2,
     "address": {"transport": "hsms", "port": 0, "timers": {"t3": 0.5}}},
]
Bench = tuple[LineConfig, EmulatedLine]


@pytest.fixture
async def bench() -> AsyncIterator[Bench]:
    config = LineConfig.model_validate({"name": "gemdrv", "time_scale": 20000, "tools": TOOLS})
    check_profiles(config)
    async with EmulatedLine(config) as line:
        assert line.endpoints is not None
        yield apply_endpoints(config, line.endpoints), line


def parts(bench: Bench, name: str) -> tuple[Tool[Any, Any], EmulatedTool, GemToolServer]:
    config, line = bench
    server = line.servers[name]
    assert isinstance(server, GemToolServer)
    return make_tool(config.tool(name), config), line.tools[name], server


async def test_a_job_ends_by_its_event_report_not_by_a_poll(bench: Bench) -> None:
    tool, model, server = parts(bench, "etcher1")
    async with tool, asyncio.timeout(20):  # the poll interval is 60 s: only the S6F11 can end it sooner
        result = await tool.run(example_recipe("etcher"))
        channel = tool.channel
        assert isinstance(channel, HsmsChannel)
        assert channel.events_received["job_ended"] == 1 and channel.events_received["job_started"] == 1
        assert model.job_log == [result.job_id]
        assert "job_ended" in server.events_sent


async def test_without_events_the_driver_polls(bench: Bench) -> None:
    tool, model, server = parts(bench, "etcher2")
    async with tool:
        result = await tool.run(example_recipe("etcher"))
        channel = tool.channel
        assert isinstance(channel, HsmsChannel)
        assert channel.events_received == {} and server.events_sent == [] and tool.polls > 4
        assert model.job_log == [result.job_id]


async def test_process_program_then_pp_select(bench: Bench) -> None:
    tool, model, server = parts(bench, "coater1")
    async with tool:
        recipe = example_recipe("coater")
        result = await tool.run(recipe)
    body = server.commands.programs[f"WL-COAT-{result.job_id}"]
    lines = dict(line.split("=", 1) for line in body.splitlines())
    assert float(lines["spin_rpm"]) == recipe.spin_rpm and lines["material"] == recipe.material
    assert model.setpoints["spin_rpm"] == pytest.approx(recipe.spin_rpm)


async def test_trace_samples_arrive(bench: Bench) -> None:
    tool, _, _ = parts(bench, "etcher1")
    async with tool:
        channel = tool.channel
        assert isinstance(channel, HsmsChannel)
        await tool.run(example_recipe("etcher"))
        for _ in range(100):
            if len(channel.samples) >= 2:
                break
            await asyncio.sleep(0.02)
        assert len(channel.samples) >= 2
        assert set(channel.samples[-1][1]) == set(type(tool).process_values)


async def test_garbled_reply_is_a_protocol_error(bench: Bench) -> None:
    tool, model, _ = parts(bench, "etcher1")
    async with tool:
        model.faults.set(FaultSpec(kind=FaultKind.GARBLE))
        with pytest.raises(ProtocolError, match="malformed SECS-II"):
            await tool.status()
        model.faults.clear()
        assert (await tool.status()).ready


async def test_silence_is_a_t3_timeout(bench: Bench) -> None:
    tool, model, _ = parts(bench, "etcher1")
    async with tool:
        model.faults.set(FaultSpec(kind=FaultKind.SILENCE))
        with pytest.raises(ToolTimeout, match=r"S1F3 within T3 0.5 s"):
            await tool.status()
        model.faults.clear()
        assert (await tool.status()).ready


async def test_error_reply_fault_is_a_protocol_error(bench: Bench) -> None:
    tool, model, _ = parts(bench, "etcher1")
    async with tool:
        model.faults.set(FaultSpec(kind=FaultKind.ERROR_REPLY))
        with pytest.raises(ProtocolError, match=r"S1F3: the tool answered S9F7 \(illegal data\)"):
            await tool.status()
        model.faults.clear()
        assert (await tool.status()).ready


async def test_an_s9_answer_is_a_protocol_error(bench: Bench) -> None:
    tool, _, _ = parts(bench, "etcher1")
    async with tool:
        channel = tool.channel
        assert isinstance(channel, HsmsChannel)
        link = channel._linked()
        with pytest.raises(ProtocolError, match=r"S99F1: the tool answered S9F3 \(unrecognized stream\)"):
            await link.request(99, 1)
        with pytest.raises(ProtocolError, match=r"S1F99: the tool answered S9F5 \(unrecognized function\)"):
            await link.request(1, 99)
        assert (await tool.status()).ready


async def test_online_local_refuses_start_with_hcack_2(bench: Bench) -> None:
    tool, model, server = parts(bench, "etcher1")
    server.remote = False
    server.control_state = "HOST_OFFLINE"
    async with tool:
        assert server.control_state == "ONLINE_LOCAL"
        with pytest.raises(CommandRejected, match=r"START: HCACK 2 \(cannot perform now\)"):
            await tool.start(example_recipe("etcher"))
        await tool.abort()  # an abort is taken even in local: stopping is never refused
    assert model.job_log == []


async def test_equipment_offline_refuses_online(bench: Bench) -> None:
    config, line = bench
    server = line.servers["etcher1"]
    assert isinstance(server, GemToolServer)
    server.control_state = "EQUIPMENT_OFFLINE"
    cfg = config.tool("etcher1").model_copy(update={"timeouts": Timeouts(connect_s=0.5)})
    tool = make_tool(cfg, config)
    with pytest.raises(ToolConnectionError, match=r"ONLACK 1: not allowed"):
        await tool.connect()
    await tool.close()


@pytest.mark.parametrize("fault", ["drop", "separate"])
async def test_link_lost_mid_job_is_reconnected_and_the_job_not_rerun(bench: Bench, fault: str) -> None:
    tool, model, server = parts(bench, "etcher1")
    recipe = example_recipe("etcher")
    async with tool:
        job = await tool.start(recipe)
        if fault == "drop":
            server.hsms.drop()
        else:
            channel = tool.channel
            assert isinstance(channel, HsmsChannel)
            model.faults.set(FaultSpec(kind=FaultKind.SEPARATE))
            with pytest.raises(ToolConnectionError, match="separated"):
                await channel._linked().request(1, 3, Item.list())
            model.faults.clear()
        result = await tool.wait(job, recipe)
    assert model.job_log == [job] and result.job_id == job
    assert server.hsms.connections == 2
