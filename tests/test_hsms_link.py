"""The asyncio HSMS link (issue 13, first slice) against secsgem's GemEquipmentHandler as the
independent peer, over a real loopback socket: select, S1F1/F2, establish communication S1F13/F14,
status variables S1F3/F4, linktest, T5 and T6 timeouts, a peer that disappears, and separate.
(secsgem 0.3 answers an unknown stream with nothing rather than S9F3: the S9 path is tested against
the GEM emulator once it exists.)"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator

import pytest
import secsgem.common
import secsgem.gem
import secsgem.hsms
import secsgem.secs.variables as sv
from secsgem.common.state_machine import WrongSourceStateError

from drivers.errors import ToolConnectionError, ToolTimeout
from drivers.transports.hsms import HsmsLink, HsmsTimers
from drivers.transports.secs2 import Item


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def equipment() -> Iterator[tuple[secsgem.gem.GemEquipmentHandler, int]]:
    port = free_port()
    settings = secsgem.hsms.HsmsSettings(address="127.0.0.1", port=port,
                                         connect_mode=secsgem.hsms.HsmsConnectMode.PASSIVE,
                                         device_type=secsgem.common.DeviceType.EQUIPMENT)
    handler = secsgem.gem.GemEquipmentHandler(settings)
    handler._mdln, handler._softrev = "WL-BONDER", "1.2.3"
    handler.status_variables.update({
        30001: secsgem.gem.StatusVariable(30001, "chuck_temp_c", "degC", sv.F8, False),
        30002: secsgem.gem.StatusVariable(30002, "state", "", sv.U1, False),
    })
    handler.status_variables[30001].value = 180.5
    handler.status_variables[30002].value = 1
    handler.enable()  # the link fixture retries until secsgem listens (a probe would be its one peer)
    yield handler, port
    with contextlib.suppress(WrongSourceStateError):  # a test may have disabled it already
        handler.disable()


async def answer_tool(stream: int, function: int, item: Item | None) -> Item | None:
    """The host's side of the tool's own establish-communication request (S1F13 -> S1F14 COMMACK 0)."""
    if (stream, function) == (1, 13):
        return Item.list(Item.binary(b"\x00"), Item.list())
    return None


@pytest.fixture
async def link(equipment: tuple[secsgem.gem.GemEquipmentHandler, int]) -> AsyncIterator[HsmsLink]:
    """Selected, with communication established (E30: before that the tool discards other messages)."""
    hsms = HsmsLink("bonder1", "127.0.0.1", equipment[1], timers=HsmsTimers(t3=3, t6=3),
                    on_message=answer_tool)
    for _ in range(50):  # until secsgem's server thread listens
        try:
            await hsms.open()
            break
        except ToolConnectionError:
            await asyncio.sleep(0.1)
    reply = await hsms.request(1, 13, Item.list())
    assert reply is not None and reply.value[0] == Item.binary(b"\x00")
    yield hsms
    await hsms.close()


async def test_select_identity_and_establish_communication(link: HsmsLink) -> None:
    assert link.selected
    assert await link.request(1, 1) == Item.list(Item.ascii("WL-BONDER"), Item.ascii("1.2.3"))
    reply = await link.request(1, 13, Item.list())
    assert reply is not None and reply.value[0] == Item.binary(b"\x00")  # COMMACK 0: accepted
    assert reply.value[1] == Item.list(Item.ascii("WL-BONDER"), Item.ascii("1.2.3"))


async def test_status_variables_by_svid(link: HsmsLink) -> None:
    reply = await link.request(1, 3, Item.list(Item.u4(30001), Item.u4(30002)))
    assert reply is not None and [v.scalar() for v in reply.value] == [180.5, 1]


async def test_linktest_and_a_burst_of_requests(link: HsmsLink) -> None:
    assert await link.linktest() < 1.0
    replies = await asyncio.gather(*(link.request(1, 1) for _ in range(20)))
    assert all(r == replies[0] for r in replies)


async def test_no_equipment_is_a_connection_error_within_t5() -> None:
    link = HsmsLink("bonder1", "127.0.0.1", free_port(), timers=HsmsTimers(t5=1))
    with pytest.raises(ToolConnectionError, match="HSMS connect"):
        await link.open()


async def test_a_silent_peer_times_out_t6_then_t3() -> None:
    """A TCP peer that accepts and never speaks HSMS: select times out (T6)."""
    silent = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    link = HsmsLink("bonder1", "127.0.0.1", port, timers=HsmsTimers(t6=0.3))
    try:
        with pytest.raises(ToolTimeout, match="select reply within T6"):
            await link.open()
    finally:
        await link.close()
        silent.close()
        await silent.wait_closed()


async def test_the_tool_going_away_fails_pending_requests(
        equipment: tuple[secsgem.gem.GemEquipmentHandler, int], link: HsmsLink) -> None:
    await asyncio.to_thread(equipment[0].disable)
    with pytest.raises((ToolConnectionError, ToolTimeout)):
        for _ in range(20):
            await link.request(1, 1)
            await asyncio.sleep(0.05)
