"""Bad input on the HSMS wire (issue 13, section 6), against the GEM emulator over a real socket: each
malformed, unknown or misaddressed message gets the reply E37/E5/E30 prescribe, and the tool lives
on; a host that never selects is closed after T7; a stream that cannot be HSMS ends only its own
connection."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator

import pytest

from drivers.line import LineConfig, check_profiles
from drivers.transports.hsms import DATA, REJECT_REQ, SELECT_REQ, SELECT_RSP, Header
from drivers.transports.secs2 import Item, decode, encode
from sim_tools.line import EmulatedLine
from sim_tools.servers.gem import GemToolServer

SESSION = 3


class RawHost:
    """A hand-driven HSMS host: frames written byte by byte, replies read raw."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer, self.system = reader, writer, 100
        self.commack = 1  # the answer to the tool's own S1F13: denied until communicate()

    @classmethod
    async def connect(cls, port: int) -> RawHost:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    def send(self, header: Header, body: bytes = b"") -> Header:
        raw = header.pack() + body
        self.writer.write(len(raw).to_bytes(4, "big") + raw)
        return header

    def data(self, stream: int, function: int, item: Item | None = None, session: int = SESSION) -> Header:
        self.system += 1
        return self.send(Header(session, stream, function, DATA, self.system, wbit=True),
                         encode(item) if item is not None else b"")

    async def read(self) -> tuple[Header, Item | None]:
        """The next message that is not the tool's own S1F13 (answered with `commack`)."""
        while True:
            async with asyncio.timeout(3):
                length = int.from_bytes(await self.reader.readexactly(4), "big")
                raw = await self.reader.readexactly(length)
            header = Header.unpack(raw[:10])
            if (header.stream, header.function, header.wbit) != (1, 13, True):
                return header, decode(raw[10:]) if len(raw) > 10 else None
            answer = Item.list(Item.binary(bytes([self.commack])), Item.list())
            self.send(Header(SESSION, 1, 14, DATA, header.system), encode(answer))

    async def select(self) -> None:
        self.send(Header(0xFFFF, 0, 0, SELECT_REQ, 1))
        header, _ = await self.read()
        assert (header.stype, header.function) == (SELECT_RSP, 0)

    async def communicate(self) -> None:
        """S1F13 -> S1F14 COMMACK 0."""
        self.commack = 0
        sent = self.data(1, 13, Item.list())
        header, item = await self.read()
        assert (header.stream, header.function, header.system) == (1, 14, sent.system)
        assert item is not None and item.value[0] == Item.binary(b"\0")

    async def close(self) -> None:
        self.writer.close()
        await asyncio.wait_for(self.writer.wait_closed(), 2)


@pytest.fixture
async def tool() -> AsyncIterator[GemToolServer]:
    config = LineConfig.model_validate({"name": "wire", "time_scale": 1000, "tools": [
        {"name": "etcher1", "kind": "etcher", "profile": "etcher-hsms",
         "address": {"transport": "hsms", "port": 0, "session": SESSION, "timers": {"t3": 1, "t7": 0.5}}}]})
    check_profiles(config)
    async with EmulatedLine(config) as line:
        server = line.servers["etcher1"]
        assert isinstance(server, GemToolServer)
        yield server


async def s9(host: RawHost, offending: Header) -> int:
    """The S9 function the tool answered `offending` with; its MHEAD must be that message's header."""
    header, item = await host.read()
    assert header.stream == 9 and not header.wbit, header
    assert item is not None and item.format == "B" and item.value == offending.pack()
    return header.function


async def test_each_bad_message_gets_its_s9_and_the_tool_lives_on(tool: GemToolServer) -> None:
    host = await RawHost.connect(tool.hsms.address.port)
    before = host.data(1, 3, Item.list())  # not selected yet: reject.req, reason 4
    header, _ = await host.read()
    assert (header.stype, header.function, header.system) == (REJECT_REQ, 4, before.system)
    await host.select()
    assert await s9(host, host.data(1, 13, Item.list(), session=SESSION + 1)) == 1  # unknown device id
    # not communicating: E30 aborts every transaction but S1F13 (F0)
    host.data(1, 3, Item.list())
    header, _ = await host.read()
    assert (header.stream, header.function) == (1, 0)
    await host.communicate()
    host.data(1, 17)  # online: else E30 aborts an S2F41 (F0) before looking at it
    header, item = await host.read()
    assert (header.stream, header.function, item) == (1, 18, Item.binary(b"\0"))
    assert await s9(host, host.data(99, 1)) == 3  # unrecognized stream
    assert await s9(host, host.data(1, 99)) == 5  # unrecognized function
    host.system += 1
    truncated = host.send(Header(SESSION, 2, 41, DATA, host.system, wbit=True), b"\x01\x02\x41\x05AB")
    assert await s9(host, truncated) == 7  # an item that cannot be decoded
    assert await s9(host, host.data(2, 41, Item.ascii("START"))) == 7  # decodes, but is not L[RCMD, L]
    assert await s9(host, host.data(10, 3, Item.binary(b"x" * (1024 * 1024 + 1)))) == 11  # over 1 MiB
    assert tool.hsms.s9_sent == [1, 3, 5, 7, 7, 11]
    # and the tool still answers
    host.data(1, 3, Item.list(Item.u4(1001)))
    header, item = await host.read()
    assert (header.stream, header.function) == (1, 4) and item == Item.list(Item("U1", [1]))  # IDLE
    await host.close()


async def test_second_host_is_refused_while_one_is_selected(tool: GemToolServer) -> None:
    first = await RawHost.connect(tool.hsms.address.port)
    await first.select()
    second = await RawHost.connect(tool.hsms.address.port)
    second.send(Header(0xFFFF, 0, 0, SELECT_REQ, 9))
    header, _ = await second.read()
    assert (header.stype, header.function) == (SELECT_RSP, 1)  # already active
    assert await asyncio.wait_for(second.reader.read(), 2) == b""  # and closed
    await first.communicate()  # the first host is unaffected
    await first.close()


async def test_host_that_never_selects_is_closed_after_t7(tool: GemToolServer) -> None:
    host = await RawHost.connect(tool.hsms.address.port)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    assert await asyncio.wait_for(host.reader.read(), 3) == b""
    assert 0.4 <= loop.time() - t0 < 2.0  # T7 is 0.5 s in this line


async def test_a_length_that_cannot_be_hsms_ends_only_that_connection(tool: GemToolServer) -> None:
    host = await RawHost.connect(tool.hsms.address.port)
    await host.select()
    host.writer.write(struct.pack(">I", 0xFFFFFFFF) + b"\0" * 10)
    await asyncio.wait_for(host.reader.read(), 2)  # whatever was under way (its S1F13), then the end
    assert host.reader.at_eof()
    again = await RawHost.connect(tool.hsms.address.port)  # the tool serves the next host
    await again.select()
    await again.communicate()
    await again.close()
