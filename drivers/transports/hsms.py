"""HSMS-SS (SEMI E37) on asyncio: the host's active connection to one GEM tool.

A message is a 4-byte length, a 10-byte header (session id, W-bit + stream, function, PType 0, SType,
system bytes) and, for data messages (SType 0), one SECS-II item (secs2.py). The link connects within
T5, selects within T6 (select.req/rsp), matches every reply to its request by the system bytes within
T3, answers the tool's linktest and deselect, ends on separate, reads a message's bytes within T8 of
each other, and gives up after T7 if the tool never selects. A tool's own primary messages (S5F1
alarms, S6F11 event reports) go to `on_message`, whose answer is sent back when the tool asked for one.
Written for asyncio rather than taken from secsgem, whose threads and callbacks do not fit the driver
model; secsgem is the independent peer in the tests (tests/test_hsms_link.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from drivers.errors import CommandRejected, ProtocolError, ToolConnectionError, ToolTimeout
from drivers.transports.hsms_timers import HsmsTimers
from drivers.transports.secs2 import Item, SecsDecodeError, decode, encode

log = logging.getLogger(__name__)

DATA, SELECT_REQ, SELECT_RSP, DESELECT_REQ, DESELECT_RSP = 0, 1, 2, 3, 4
LINKTEST_REQ, LINKTEST_RSP, REJECT_REQ, SEPARATE_REQ = 5, 6, 7, 9
MAX_MESSAGE = 16 * 1024 * 1024  # a longer length is a garbled stream, not a message
S9_TEXT = {1: "unrecognized device id", 3: "unrecognized stream", 5: "unrecognized function",
           7: "illegal data", 9: "transaction timer (T3) timeout", 11: "data too long",
           13: "conversation timeout"}


@dataclass(frozen=True)
class Header:
    session: int
    stream: int  # W-bit in bit 7 of the byte on the wire
    function: int
    stype: int
    system: int
    wbit: bool = False

    def pack(self) -> bytes:
        return struct.pack(">HBBBBI", self.session, (0x80 if self.wbit else 0) | self.stream, self.function,
                           0, self.stype, self.system)

    @staticmethod
    def unpack(raw: bytes) -> Header:
        session, b2, b3, ptype, stype, system = struct.unpack(">HBBBBI", raw)
        if ptype != 0:
            raise ProtocolError("hsms", f"PType {ptype} is not SECS-II")
        return Header(session, b2 & 0x7F, b3, stype, system, bool(b2 & 0x80))


OnMessage = Callable[[int, int, Item | None], Awaitable[Item | None]]


class Unrecognised(Exception):
    """Raised by an `on_message` handler: the link answers S9F<function> (3 stream, 5 function,
    7 illegal data) with the message's header, as E5 says."""

    def __init__(self, function: int) -> None:
        super().__init__(f"S9F{function}: {S9_TEXT.get(function, 'error')}")
        self.function = function


def _mhead_system(body: bytes) -> int:
    """The system bytes of the message an S9 answers (its MHEAD, a 10-byte B item), else 0."""
    try:
        item = decode(body)
    except SecsDecodeError:
        return 0
    if item.format != "B" or len(item.value) != 10:
        return 0
    return int.from_bytes(item.value[6:10], "big")


class HsmsLink:
    """One selected HSMS session to a tool. `await link.open()`, `await link.request(1, 3, item)`."""

    def __init__(self, tool: str, host: str, port: int, *, session: int = 0, timers: HsmsTimers | None = None,
                 on_message: OnMessage | None = None) -> None:
        self.tool, self.host, self.port, self.session = tool, host, port, session
        self.timers = timers or HsmsTimers()
        self.on_message = on_message
        self._system = itertools.count(1)
        self._pending: dict[int, asyncio.Future[tuple[Header, bytes]]] = {}
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self._linktest: asyncio.Task[None] | None = None
        self._lost: str | None = None
        self.selected = False

    # --- link ------------------------------------------------------------------------------------
    async def open(self) -> None:
        t = self.timers
        try:
            async with asyncio.timeout(t.t5):
                self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        except (OSError, TimeoutError) as exc:
            where = f"{self.host}:{self.port}"
            raise ToolConnectionError(self.tool, f"HSMS connect to {where}: {exc or 'T5'}") from None
        self._lost = None
        self._task = asyncio.get_running_loop().create_task(self._read_loop(), name=f"hsms-{self.tool}")
        await asyncio.sleep(t.select_delay_s)
        header, _ = await self._control(SELECT_REQ, t.t6, "select")
        # select.rsp status: 0 ok, 1 already active, 2 not ready, 3 connections exhausted
        if header.stype != SELECT_RSP or header.function != 0:
            await self.close()
            raise ToolConnectionError(self.tool, f"HSMS select refused: status {header.function}")
        self.selected = True
        if t.linktest_s:
            self._linktest = asyncio.get_running_loop().create_task(self._linktests())

    async def close(self) -> None:
        """Separate (no reply expected) and close the socket; pending requests fail."""
        if self._writer is not None and self.selected and self._lost is None:
            with contextlib.suppress(OSError, RuntimeError):
                self._send(Header(0xFFFF, 0, 0, SEPARATE_REQ, next(self._system)))
        self.selected = False
        for task in (self._linktest, self._task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._linktest = self._task = None
        self._fail(ToolConnectionError(self.tool, "HSMS link closed"))
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError, ConnectionError, TimeoutError):
                async with asyncio.timeout(1.0):  # a peer that never closes its end cannot hold us
                    await self._writer.wait_closed()
        self._reader = self._writer = None

    async def linktest(self) -> float:
        """One linktest round trip (T6); its duration in seconds."""
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await self._control(LINKTEST_REQ, self.timers.t6, "linktest")
        return loop.time() - t0

    # --- data messages ---------------------------------------------------------------------------
    async def request(self, stream: int, function: int, item: Item | None = None) -> Item | None:
        """Send a primary message with the W-bit and return the reply's item (T3). ProtocolError for
        an S9 or an unexpected reply, CommandRejected for an F0 (the tool aborted the transaction)."""
        system = next(self._system)
        fut = self._expect(system)
        self._send(Header(self.session, stream, function, DATA, system, wbit=True), item)
        try:
            async with asyncio.timeout(self.timers.t3):
                header, body = await fut
        except TimeoutError:
            t3 = self.timers.t3
            raise ToolTimeout(self.tool, f"no reply to S{stream}F{function} within T3 {t3:g} s") from None
        finally:
            self._pending.pop(system, None)
        if header.stype == REJECT_REQ:  # byte 3: the reason (e.g. 4: entity not selected)
            why = f"rejected by the tool: reason {header.function}"
            raise ProtocolError(self.tool, f"S{stream}F{function} {why}")
        if header.stream == 9:
            raise ProtocolError(self.tool, f"S{stream}F{function}: the tool answered S9F{header.function} "
                                           f"({S9_TEXT.get(header.function, 'error')})")
        if header.function == 0:
            raise CommandRejected(self.tool, f"S{stream}F{function}: the tool aborted the transaction (F0)")
        if (header.stream, header.function) != (stream, function + 1):
            got = f"S{header.stream}F{header.function}"
            raise ProtocolError(self.tool, f"S{stream}F{function} answered with {got}")
        return self._item(body, f"S{header.stream}F{header.function}")

    async def send(self, stream: int, function: int, item: Item | None = None, *,
                   system: int | None = None) -> None:
        """A message that expects no reply (a secondary, or a primary without the W-bit)."""
        self._send(Header(self.session, stream, function, DATA, system or next(self._system)), item)

    def _item(self, body: bytes, what: str) -> Item | None:
        if not body:
            return None
        try:
            return decode(body)
        except SecsDecodeError as exc:
            raise ProtocolError(self.tool, f"{what}: malformed SECS-II: {exc}") from None

    # --- plumbing --------------------------------------------------------------------------------
    def _send(self, header: Header, item: Item | None = None) -> None:
        if self._writer is None or self._lost is not None:
            raise ToolConnectionError(self.tool, self._lost or "HSMS link not open")
        body = header.pack() + (encode(item) if item is not None else b"")
        self._writer.write(len(body).to_bytes(4, "big") + body)

    def _expect(self, system: int) -> asyncio.Future[tuple[Header, bytes]]:
        fut: asyncio.Future[tuple[Header, bytes]] = asyncio.get_running_loop().create_future()
        self._pending[system] = fut
        return fut

    async def _control(self, stype: int, limit_s: float, what: str) -> tuple[Header, bytes]:
        system = next(self._system)
        fut = self._expect(system)
        self._send(Header(0xFFFF, 0, 0, stype, system))
        try:
            async with asyncio.timeout(limit_s):
                return await fut
        except TimeoutError:
            raise ToolTimeout(self.tool, f"no HSMS {what} reply within T6 {limit_s:g} s") from None
        finally:
            self._pending.pop(system, None)

    def _fail(self, error: Exception) -> None:
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(error)
                fut.exception()  # seen: a request that gave up meanwhile must not log it at GC

    async def _read_message(self) -> tuple[Header, bytes]:
        assert self._reader is not None
        length = int.from_bytes(await self._reader.readexactly(4), "big")  # between messages: no timer
        if not 10 <= length <= MAX_MESSAGE:
            raise ProtocolError(self.tool, f"HSMS message length {length} is not 10..{MAX_MESSAGE}")
        async with asyncio.timeout(self.timers.t8):  # T8: the rest must follow without a pause
            raw = await self._reader.readexactly(length)
        return Header.unpack(raw[:10]), raw[10:]

    async def _read_loop(self) -> None:
        try:
            while True:
                header, body = await self._read_message()
                await self._dispatch(header, body)
        except (asyncio.IncompleteReadError, ConnectionError, OSError) as exc:
            self._lost = f"HSMS link to {self.tool} lost: {exc or 'closed by the tool'}"
        except TimeoutError:
            self._lost = f"HSMS link to {self.tool}: a message stalled past T8 {self.timers.t8:g} s"
        except ProtocolError as exc:
            self._lost = f"HSMS link to {self.tool}: {exc.reason}"
        self.selected = False
        log.warning("%s", self._lost)
        self._fail(ToolConnectionError(self.tool, self._lost or "lost"))

    async def _dispatch(self, header: Header, body: bytes) -> None:
        st = header.stype
        reply = st == DATA and not header.wbit and header.system in self._pending
        if st == DATA and header.stream == 9 and not reply:  # S9 names our message in its MHEAD
            header = Header(header.session, 9, header.function, DATA, _mhead_system(body))
            reply = header.system in self._pending
        if st in (SELECT_RSP, LINKTEST_RSP, DESELECT_RSP, REJECT_REQ) or reply:
            fut = self._pending.get(header.system)
            if fut is not None and not fut.done():
                fut.set_result((header, body))
            elif st == DATA:
                log.info("%s: late reply S%dF%d ignored", self.tool, header.stream, header.function)
        elif st == LINKTEST_REQ:
            self._send(Header(0xFFFF, 0, 0, LINKTEST_RSP, header.system))
        elif st == DESELECT_REQ:
            self._send(Header(header.session, 0, 0, DESELECT_RSP, header.system))
            self.selected = False
        elif st == SELECT_REQ:  # a tool that also selects: we are already selected
            self._send(Header(header.session, 0, 1 if self.selected else 0, SELECT_RSP, header.system))
        elif st == SEPARATE_REQ:
            raise ConnectionError("the tool separated the session")
        elif st == DATA:
            await self._primary(header, body)

    async def _primary(self, header: Header, body: bytes) -> None:
        """A tool's own message: decoded and handed to on_message; S9F7 for malformed data."""
        try:
            item = decode(body) if body else None
        except SecsDecodeError:
            await self.send(9, 7, Item.binary(header.pack()))
            return
        try:
            answer = await self.on_message(header.stream, header.function, item) if self.on_message else None
        except Unrecognised as exc:
            await self.send(9, exc.function, Item.binary(header.pack()))  # a new primary: own system bytes
            return
        if header.wbit:
            if answer is None and self.on_message is None:
                await self.send(header.stream, 0, None, system=header.system)  # F0: not handled here
            else:
                await self.send(header.stream, header.function + 1, answer, system=header.system)

    async def _linktests(self) -> None:
        while True:
            await asyncio.sleep(self.timers.linktest_s)
            try:
                await self.linktest()
            except ToolTimeout:
                self._lost = f"HSMS link to {self.tool}: linktest unanswered"
                if self._writer is not None:
                    self._writer.close()
                return
