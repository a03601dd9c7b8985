"""HSMS-SS passive end (SEMI E37) for an emulated GEM tool: listen on loopback, one selected host.

The transport rules, so the GEM layer above (gem.py) sees only decoded primaries:
- a connection must select within T7 or is closed; a second host while one is selected gets
  select.rsp 1 (already active) and is closed;
- a data message before select gets reject.req reason 4 (entity not selected);
- a wrong session id gets S9F1, an undecodable item S9F7, a message over 1 MiB S9F11 - as new
  primaries carrying the offending header (MHEAD) - and the session lives on;
- a message that stalls past T8 or a length that cannot be a message ends the connection;
- the tool's own primaries (S6F11, S5F1, S1F13, S6F1) wait T3 for their reply, then S9F9.
Link faults act here: silence (no reply: the host's T3), delay, garble (a reply whose item cannot
be decoded), link_drop (the socket closes), separate (separate.req, then close) and error_reply (an
S9F7 instead of the reply).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable

from drivers.addresses import HsmsAddress
from drivers.transports.hsms import (
    DATA,
    DESELECT_REQ,
    DESELECT_RSP,
    LINKTEST_REQ,
    LINKTEST_RSP,
    MAX_MESSAGE,
    REJECT_REQ,
    SELECT_REQ,
    SELECT_RSP,
    SEPARATE_REQ,
    Header,
    Unrecognised,
)
from drivers.transports.secs2 import Item, SecsDecodeError, decode, encode
from sim_tools.faults import FaultKind, FaultSet

log = logging.getLogger(__name__)
EQUIPMENT_MAX = 1024 * 1024  # longer data messages get S9F11
Reply = tuple[int, Item | None]  # (function of the reply, item); function 0 aborts the transaction
Handler = Callable[[int, int, Item | None], Awaitable[Reply | None]]


class HsmsPassive:
    """`await server.start()` -> the live address; `handler(stream, function, item)` answers primaries."""

    def __init__(self, name: str, address: HsmsAddress, faults: FaultSet, handler: Handler,
                 on_selected: Callable[[bool], None]) -> None:
        self.name, self.address, self.faults = name, address, faults
        self.handler, self.on_selected = handler, on_selected
        self.timers = address.timers
        self._server: asyncio.Server | None = None
        self._writer: asyncio.StreamWriter | None = None  # the selected host's
        self._conns: set[asyncio.Task[None]] = set()
        self._pending: dict[int, asyncio.Future[tuple[Header, Item | None]]] = {}
        self._system = itertools.count(0x10000)
        self.connections = 0
        self.s9_sent: list[int] = []  # S9 functions sent (tests)

    async def start(self) -> HsmsAddress:
        a = self.address
        self._server = await asyncio.start_server(self._accept, a.host, a.port)
        port = self._server.sockets[0].getsockname()[1]
        self.address = a.model_copy(update={"port": port})
        return self.address

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._conns):
            task.cancel()
        if self._conns:
            await asyncio.wait(self._conns, timeout=2.0)
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await self._server.wait_closed()
            self._server = None

    @property
    def selected(self) -> bool:
        return self._writer is not None

    def drop(self) -> None:
        """Close the selected host's connection (an injected link drop, or a power cycle)."""
        if self._writer is not None:
            self._writer.close()

    # --- the tool's own primaries ---------------------------------------------------------------
    async def request(self, stream: int, function: int, item: Item | None) -> Item | None:
        """Send with the W-bit, wait T3 for the reply; on T3, S9F9 and None."""
        writer = self._writer
        if writer is None:
            raise ConnectionError("no selected host")
        system = next(self._system)
        fut: asyncio.Future[tuple[Header, Item | None]] = asyncio.get_running_loop().create_future()
        self._pending[system] = fut
        header = Header(self.address.session, stream, function, DATA, system, wbit=True)
        self._write(writer, header, item)
        try:
            async with asyncio.timeout(self.timers.t3):
                _, answer = await fut
            return answer
        except TimeoutError:
            self._s9(writer, 9, header)
            return None
        finally:
            self._pending.pop(system, None)

    # --- connections ----------------------------------------------------------------------------
    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        self.connections += 1
        try:
            await self._connection(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError, OSError, TimeoutError) as exc:
            log.info("%s: HSMS connection ended: %s", self.name, exc or type(exc).__name__)
        except asyncio.CancelledError:  # stop(): asyncio's stream callback would log a cancelled task
            log.debug("%s: HSMS connection closed by stop", self.name)
        finally:
            self._conns.discard(task)
            if self._writer is writer:
                self._writer = None
                for fut in self._pending.values():
                    if not fut.done():
                        fut.set_exception(ConnectionError("host connection lost"))
                        fut.exception()
                self.on_selected(False)
            writer.close()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        selected = False
        loop = asyncio.get_running_loop()
        t7_deadline = loop.time() + self.timers.t7
        while True:
            wait = None if selected else max(0.0, t7_deadline - loop.time())
            async with asyncio.timeout(wait):  # T7: not selected in time -> TimeoutError closes
                raw_len = await reader.readexactly(4)
            length = int.from_bytes(raw_len, "big")
            if not 10 <= length <= MAX_MESSAGE:
                raise ConnectionError(f"length {length} cannot be an HSMS message")
            async with asyncio.timeout(self.timers.t8):
                raw = await reader.readexactly(length)
            try:
                header = Header.unpack(raw[:10])
            except Exception:  # PType other than SECS-II
                self._write(writer, Header(0xFFFF, raw[5], 1, REJECT_REQ, int.from_bytes(raw[6:10], "big")))
                continue
            selected = await self._control(writer, header, selected) if header.stype != DATA else selected
            if header.stype == DATA:
                if not selected:
                    self._write(writer, Header(header.session, 0, 4, REJECT_REQ, header.system))
                elif length - 10 > EQUIPMENT_MAX:
                    self._s9(writer, 11, header)
                else:
                    await self._data(writer, header, raw[10:])

    async def _control(self, writer: asyncio.StreamWriter, h: Header, selected: bool) -> bool:
        st = h.stype
        if st == SELECT_REQ:
            if self._writer is not None and self._writer is not writer:
                self._write(writer, Header(h.session, 0, 1, SELECT_RSP, h.system))  # already active
                raise ConnectionError("a second host tried to select")
            self._write(writer, Header(h.session, 0, 0, SELECT_RSP, h.system))
            if self._writer is None:
                self._writer = writer
                self.on_selected(True)
            return True
        if st == LINKTEST_REQ:
            self._write(writer, Header(0xFFFF, 0, 0, LINKTEST_RSP, h.system))
        elif st == DESELECT_REQ:
            self._write(writer, Header(h.session, 0, 0, DESELECT_RSP, h.system))
            if self._writer is writer:
                self._writer = None
                self.on_selected(False)
            return False
        elif st == SEPARATE_REQ:
            raise ConnectionError("the host separated")
        elif st in (SELECT_RSP, DESELECT_RSP, LINKTEST_RSP, REJECT_REQ):
            log.info("%s: unexpected HSMS control message %d ignored", self.name, st)
        else:
            self._write(writer, Header(h.session, st, 2, REJECT_REQ, h.system))  # 2: SType not supported
        return selected

    async def _data(self, writer: asyncio.StreamWriter, header: Header, body: bytes) -> None:
        if header.session != self.address.session:
            self._s9(writer, 1, header)
            return
        try:
            item = decode(body) if body else None
        except SecsDecodeError:
            self._s9(writer, 7, header)
            return
        fut = self._pending.get(header.system)
        if not header.wbit and fut is not None:
            if not fut.done():
                fut.set_result((header, item))
            return
        if not header.wbit and header.stream == 9:
            log.warning("%s: host sent S9F%d", self.name, header.function)
            return
        if await self._fault(writer, header):
            return
        try:
            reply = await self.handler(header.stream, header.function, item)
        except Unrecognised as exc:
            self._s9(writer, exc.function, header)
            return
        if header.wbit and reply is not None:
            function, answer = reply
            out = Header(header.session, header.stream, function, DATA, header.system)
            if self.faults.fires(FaultKind.GARBLE) is not None:
                writer.write(len(b"\x00" * 10 + b"\x41\x05A").to_bytes(4, "big") + out.pack() + b"\x41\x05A")
                return
            self._write(writer, out, answer)

    async def _fault(self, writer: asyncio.StreamWriter, header: Header) -> bool:
        """Act on a link fault for this message; True if it is not to be answered."""
        if (spec := self.faults.fires(FaultKind.DELAY)) is not None:
            await asyncio.sleep(spec.delay_s)
        if self.faults.fires(FaultKind.SEPARATE) is not None:
            self._write(writer, Header(0xFFFF, 0, 0, SEPARATE_REQ, next(self._system)))
            writer.close()
            return True
        if self.faults.fires(FaultKind.LINK_DROP) is not None:
            writer.close()
            return True
        if header.wbit and self.faults.fires(FaultKind.ERROR_REPLY) is not None:
            self._s9(writer, 7, header)
            return True
        return header.wbit and self.faults.fires(FaultKind.SILENCE) is not None

    def _s9(self, writer: asyncio.StreamWriter, function: int, offending: Header) -> None:
        self.s9_sent.append(function)
        header = Header(self.address.session, 9, function, DATA, next(self._system))
        self._write(writer, header, Item.binary(offending.pack()))

    @staticmethod
    def _write(writer: asyncio.StreamWriter, header: Header, item: Item | None = None) -> None:
        body = header.pack() + (encode(item) if item is not None else b"")
        writer.write(len(body).to_bytes(4, "big") + body)
