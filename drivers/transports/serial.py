"""Serial channel: ASCII request/reply lines over a serial port, a pty or a socket:// URL.

pyserial-asyncio-fast gives one reader/writer pair for all three. A serial line has no request
ids, so exactly one request is in flight at a time and stale input (the late reply of a request
that timed out) is thrown away before each request; otherwise replies would get out of step.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import serial_asyncio_fast

from drivers.addresses import SerialAddress
from drivers.channel import Channel, Timeouts, describe
from drivers.errors import CommandRejected, ProtocolError, ToolConnectionError, ToolError
from drivers.profiles.base import Value
from drivers.profiles.serial import SerialProfile
from drivers.transports.serial_codec import QueryCodec, codec_for

CLOSE_TIMEOUT_S = 1.0


class SerialChannel(Channel):
    transport = "serial"

    def __init__(
        self,
        tool: str,
        profile: SerialProfile,
        address: SerialAddress,
        timeouts: Timeouts | None = None,
    ) -> None:
        super().__init__(tool, profile, timeouts)
        self.address = address
        self.codec = codec_for(profile)
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._flush_input: Callable[[], Any] | None = None
        self._lock = asyncio.Lock()
        self._plans: dict[tuple[str, ...], list[tuple[QueryCodec, bytes]]] = {}

    # --- link ----------------------------------------------------------------------------------
    async def _open(self) -> None:
        try:
            reader, writer = await serial_asyncio_fast.open_serial_connection(
                url=self.address.url, baudrate=self.address.baud
            )
        except ValueError as exc:  # pyserial: bad URL or settings
            raise ToolConnectionError(self.tool, f"cannot open {self.address.url}: {exc}") from exc
        self._reader, self._writer = reader, writer
        self._flush_input = None
        if not self.address.url.startswith("socket://"):
            port = writer.transport.get_extra_info("serial")
            self._flush_input = getattr(port, "reset_input_buffer", None)

    async def _shutdown(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        self._flush_input = None
        if writer is None:
            return
        # wait_closed also awaits serial_asyncio_fast's own close task, so nothing is left running
        with contextlib.suppress(Exception):
            writer.close()
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await writer.wait_closed()

    # --- requests ------------------------------------------------------------------------------
    async def _read(self, names: Sequence[str]) -> dict[str, Value]:
        values: dict[str, Value] = {}
        for query, frame in self._plan(names):
            line = await self._exchange(frame, query.name)
            try:
                values.update(query.reply.parse(line))
            except ValueError as exc:
                error = self.codec.parse_error(line)
                if error is not None:
                    raise ProtocolError(
                        self.tool, f"query {query.name} refused: ERR {error[0]} {error[1]}"
                    ) from None
                raise ProtocolError(self.tool, f"query {query.name}: {exc}") from None
        return {n: values[n] for n in names}

    async def _command(self, name: str, args: Mapping[str, Value]) -> None:
        cmd = self.codec.commands[name]
        try:
            frame = self.codec.encode(cmd.request.format(args))
        except ValueError as exc:
            raise ToolError(self.tool, f"command {name}: bad arguments: {exc}") from None
        line = await self._exchange(frame, name)
        error = self.codec.parse_error(line)
        if error is not None:
            raise CommandRejected(self.tool, f"{name} rejected: {error[1]} (code {error[0]})")
        if not cmd.reply.matches(line):
            raise ProtocolError(
                self.tool, f"command {name}: reply {describe(line)} is not {cmd.reply.text!r}"
            )

    def _plan(self, names: Sequence[str]) -> list[tuple[QueryCodec, bytes]]:
        """The fewest queries whose replies cover the names (greedy set cover), cached."""
        key = tuple(names)
        plan = self._plans.get(key)
        if plan is not None:
            return plan
        missing = set(names)
        plan = []
        while missing:
            best = max(
                self.codec.queries.values(), key=lambda q: len(missing.intersection(q.reply.names))
            )
            covered = missing.intersection(best.reply.names)
            if not covered:
                raise ToolError(self.tool, f"no query of the profile reads {sorted(missing)}")
            try:
                request = self.codec.encode(best.request.format({}))
            except ValueError as exc:
                raise ToolError(self.tool, f"query {best.name}: {exc}") from None
            plan.append((best, request))
            missing -= covered
        self._plans[key] = plan
        return plan

    async def _exchange(self, frame: bytes, what: str) -> str:
        """Send one request line and return the reply line (text, without terminator)."""
        async with self._lock:
            reader, writer = self._reader, self._writer
            if reader is None or writer is None or writer.transport.is_closing():
                raise ToolConnectionError(self.tool, f"link to {self.address.url} is closed")
            self._discard_stale(reader)
            writer.write(frame)
            if writer.transport.get_write_buffer_size():
                await writer.drain()
            try:
                raw = await reader.readuntil(self.codec.terminator)
            except asyncio.IncompleteReadError:
                raise ToolConnectionError(
                    self.tool, f"link closed by the tool side during {what}"
                ) from None
            except asyncio.LimitOverrunError as exc:
                raise ProtocolError(
                    self.tool, f"{what}: no line terminator in {exc.consumed} bytes"
                ) from None
            except OSError as exc:
                raise ToolConnectionError(self.tool, f"link lost during {what}: {exc}") from exc
        try:
            return self.codec.decode(raw)
        except ValueError as exc:
            raise ProtocolError(self.tool, f"{what}: {exc}") from None

    def _discard_stale(self, reader: asyncio.StreamReader) -> None:
        """Drop bytes nobody asked for: in the reader's buffer and in the port's input queue."""
        if (exc := reader.exception()) is not None:
            raise ToolConnectionError(self.tool, f"link lost: {exc}")
        buffered: bytearray | None = getattr(reader, "_buffer", None)
        if buffered:
            self.log.debug("discarding %d stale byte(s): %s", len(buffered), describe(buffered))
            buffered.clear()
        if self._flush_input is not None:
            with contextlib.suppress(Exception):
                self._flush_input()
