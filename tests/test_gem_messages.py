"""The GEM emulator's additional capabilities, message by message over a real socket (issue 13): equipment
constants, clock, terminal services, SV namelist, alarm lists, process program management, the acks of
report configuration, a trace with group size, S9F9 for a host that never answers, and the driver's
reading of an ECID."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from drivers.factory import make_tool
from drivers.line import LineConfig, ToolConfig
from drivers.transports.hsms import Header
from drivers.transports.secs2 import Item
from sim_tools.servers.gem import GemToolServer
from tests.test_gem_wire import RawHost, tool  # noqa: F401 - the emulated etcher fixture

ACK0 = Item.binary(b"\0")


def u4s(*ids: int) -> Item:
    return Item.list(*[Item.u4(i) for i in ids])


@pytest.fixture
async def host(tool: GemToolServer) -> AsyncIterator[RawHost]:  # noqa: F811
    raw = await RawHost.connect(tool.hsms.address.port)
    await raw.select()
    await raw.communicate()
    raw.data(1, 17)
    assert (await raw.read())[1] == ACK0
    yield raw
    await raw.close()


async def ask(host: RawHost, stream: int, function: int, item: Item | None = None) -> Item | None:
    sent = host.data(stream, function, item)
    header, reply = await host.read()
    assert (header.stream, header.function, header.system) == (stream, function + 1, sent.system), header
    return reply


async def test_equipment_constants_clock_terminal(host: RawHost, tool: GemToolServer) -> None:  # noqa: F811
    ecid = tool.profile.variables["establish_comm_timeout_s"].vid
    assert await ask(host, 2, 13, u4s(ecid)) == Item.list(Item("U2", [10]))
    assert await ask(host, 2, 15, Item.list(Item.list(Item.u4(ecid), Item("U2", [30])))) == ACK0
    assert await ask(host, 2, 13, u4s(ecid, 777777)) == Item.list(Item("U2", [30]), Item.list())
    unknown = Item.list(Item.list(Item.u4(777777), Item("U2", [1])))
    assert await ask(host, 2, 15, unknown) == Item.binary(b"\1")  # EAC 1: no such ECID
    clock = await ask(host, 2, 17)
    assert clock is not None and clock.format == "A" and len(clock.value) == 16 and clock.value.isdigit()
    assert await ask(host, 10, 3, Item.list(Item.binary(b"\0"), Item.ascii("operator: check chuck"))) == ACK0
    assert tool.terminal == ["operator: check chuck"]
    names = await ask(host, 1, 11, u4s(1001))
    assert names == Item.list(Item.list(Item.u4(1001), Item.ascii("state"), Item.ascii("")))


async def test_alarm_lists_and_process_programs(host: RawHost, tool: GemToolServer) -> None:  # noqa: F811
    alarms = await ask(host, 5, 5, Item.u4(10))
    door = Item.ascii("door opened during process")
    assert alarms == Item.list(Item.list(Item.binary(b"\1"), Item.u4(10), door))  # ALCD 1: personal safety
    assert await ask(host, 5, 3, Item.list(Item.binary(b"\x80"), Item.u4(900))) == ACK0
    enabled = await ask(host, 5, 7)
    assert enabled is not None and [row.value[1] for row in enabled.value] == [Item.u4(900)]
    assert await ask(host, 7, 3, Item.list(Item.ascii("PP1"), Item.ascii("power_w=300\n"))) == ACK0
    assert await ask(host, 7, 19) == Item.list(Item.ascii("PP1"))
    program = Item.list(Item.ascii("PP1"), Item.ascii("power_w=300\n"))
    assert await ask(host, 7, 5, Item.ascii("PP1")) == program
    assert await ask(host, 7, 5, Item.ascii("nope")) == Item.list()
    assert await ask(host, 7, 17, Item.list(Item.ascii("nope"))) == Item.binary(b"\4")  # PPID not found
    assert await ask(host, 7, 17, Item.list(Item.ascii("PP1"))) == ACK0
    too_long = "x" * (tool.profile.process_programs.max_body_bytes + 1)
    assert await ask(host, 7, 3, Item.list(Item.ascii("PP2"), Item.ascii(too_long))) == Item.binary(b"\2")


async def test_report_configuration_acks(host: RawHost, tool: GemToolServer) -> None:  # noqa: F811
    def define(rptid: int, *vids: int) -> Item:
        return Item.list(Item.u4(1), Item.list(Item.list(Item.u4(rptid), u4s(*vids))))

    def link(ceid: int, *rptids: int) -> Item:
        return Item.list(Item.u4(2), Item.list(Item.list(Item.u4(ceid), u4s(*rptids))))

    assert await ask(host, 2, 33, define(5, 999999)) == Item.binary(b"\4")  # VID does not exist
    assert await ask(host, 2, 33, define(5, 1001)) == ACK0
    assert await ask(host, 2, 33, define(5, 1002)) == Item.binary(b"\3")  # already defined
    assert await ask(host, 2, 35, link(424242, 5)) == Item.binary(b"\4")  # CEID does not exist
    assert await ask(host, 2, 35, link(102, 6)) == Item.binary(b"\5")  # RPTID does not exist
    assert await ask(host, 2, 35, link(102, 5)) == ACK0
    assert await ask(host, 2, 35, link(102, 5)) == Item.binary(b"\3")  # already linked
    assert await ask(host, 2, 37, Item.list(Item("BOOLEAN", [True]), u4s(424242))) == Item.binary(b"\1")
    assert await ask(host, 2, 37, Item.list(Item("BOOLEAN", [True]), u4s(102))) == ACK0
    assert tool.reports.links == {102: [5]} and tool.reports.enabled == {102}
    assert await ask(host, 2, 33, Item.list(Item.u4(3), Item.list())) == ACK0  # delete all
    assert tool.reports.reports == {} and tool.reports.links == {}


async def test_trace_sends_groups_of_samples(host: RawHost, tool: GemToolServer) -> None:  # noqa: F811
    svid = tool.profile.variables["state"].vid
    body = Item.list(Item.u4(7), Item.ascii("000001"), Item.u4(4), Item.u4(2), u4s(svid))
    assert await ask(host, 2, 23, body) == ACK0
    samples = []
    for _ in range(2):  # TOTSMP 4 in groups of 2: two S6F1
        header, item = await host.read()
        assert (header.stream, header.function) == (6, 1)
        host.send(Header(header.session, 6, 2, 0, header.system), b"\x21\x01\x00")
        assert item is not None
        samples.append(item.value[3])
    assert samples == [Item.list(Item("U1", [1]), Item("U1", [1]))] * 2  # IDLE, twice per report
    assert await ask(host, 2, 23, Item.list(Item.u4(8), Item.ascii("0001"), Item.u4(1), Item.u4(1),
                                            u4s(svid))) == Item.binary(b"\3")  # a bad DSPER


async def test_unanswered_tool_primary_gets_s9f9(tool: GemToolServer) -> None:  # noqa: F811
    raw = await RawHost.connect(tool.hsms.address.port)
    await raw.select()
    async with asyncio.timeout(3):  # the tool's own S1F13, left unanswered past T3 (1 s here)
        length = int.from_bytes(await raw.reader.readexactly(4), "big")
        s1f13 = Header.unpack((await raw.reader.readexactly(length))[:10])
        length = int.from_bytes(await raw.reader.readexactly(4), "big")
        raw_s9 = await raw.reader.readexactly(length)
    header = Header.unpack(raw_s9[:10])
    assert (s1f13.stream, s1f13.function, header.stream, header.function) == (1, 13, 9, 9)
    assert raw_s9[10:] == b"\x21\x0a" + s1f13.pack()  # MHEAD: the unanswered message's header
    await raw.close()


async def test_the_driver_reads_an_equipment_constant(tool: GemToolServer) -> None:  # noqa: F811
    cfg = ToolConfig(name="etcher1", kind="etcher", profile="etcher-hsms", address=tool.hsms.address)
    line = LineConfig(name="ec", time_scale=1000, tools=[cfg])
    async with make_tool(cfg, line) as driver:
        assert await driver.channel.read(["establish_comm_timeout_s", "state"]) == {
            "establish_comm_timeout_s": 10, "state": "IDLE"}
