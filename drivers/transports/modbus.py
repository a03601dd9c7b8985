"""Modbus TCP / RTU channel on pymodbus: planned block reads, argument writes, then a trigger.

pymodbus's own retries and reconnect are off: the Channel base owns reconnect and never retries a
command, and a library retrying underneath would break both. pymodbus only reports "no response"
(ModbusIOException) for a timeout, a dead link and a garbled reply alike, so the channel watches
raw frames (trace_packet) and the connection (trace_connect) to tell them apart, and fails the
pending request at once instead of letting a garbled reply sit until the timeout.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Mapping, Sequence

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.constants import ExcCodes
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.framer import FramerRTU, FramerType
from pymodbus.pdu import DecodePDU, ModbusPDU

from drivers.addresses import ModbusRtuAddress, ModbusTcpAddress
from drivers.channel import Channel, Timeouts
from drivers.errors import (
    CommandRejected,
    ProtocolError,
    ToolConnectionError,
    ToolError,
    ToolTimeout,
)
from drivers.profiles.base import Value
from drivers.profiles.modbus import ModbusProfile
from drivers.transports.modbus_codec import Block, BlockDecoder, plan_blocks, write_runs

Client = AsyncModbusTcpClient | AsyncModbusSerialClient


def exception_name(code: int) -> str:
    try:
        return ExcCodes(code).name
    except ValueError:
        return f"EXCEPTION_{code}"


class ModbusChannel(Channel):
    transport = "modbus"

    def __init__(
        self,
        tool: str,
        profile: ModbusProfile,
        address: ModbusTcpAddress | ModbusRtuAddress,
        timeouts: Timeouts | None = None,
    ) -> None:
        super().__init__(tool, profile, timeouts)
        self.mb_profile = profile
        self.address = address
        self._client: Client | None = None
        self._plans: dict[tuple[str, ...], list[Block]] = {}
        self._decoder = BlockDecoder(profile)
        self._in_flight = False
        self._garbled: str | None = None
        self._lost = False
        self._rtu = FramerRTU(DecodePDU(False)) if isinstance(address, ModbusRtuAddress) else None
        if isinstance(address, ModbusTcpAddress):
            self._where = f"modbus tcp {address.host}:{address.port} unit {address.unit}"
        else:
            self._where = f"modbus rtu {address.device} unit {address.unit}"

    # --- link ------------------------------------------------------------------------------
    def _make_client(self) -> Client:
        a, t = self.address, self.timeouts.request_s
        if isinstance(a, ModbusTcpAddress):
            return AsyncModbusTcpClient(
                a.host, port=a.port, name=self.tool, timeout=t, retries=0,
                reconnect_delay=0.0, reconnect_delay_max=0.0,
                trace_packet=self._trace_packet, trace_connect=self._trace_connect,
            )
        return AsyncModbusSerialClient(
            a.device, framer=FramerType.RTU, baudrate=a.baud, parity=a.parity, bytesize=8,
            stopbits=1, name=self.tool, timeout=t, retries=0,
            reconnect_delay=0.0, reconnect_delay_max=0.0,
            trace_packet=self._trace_packet, trace_connect=self._trace_connect,
        )

    async def _open(self) -> None:
        self._lost = False
        self._client = self._make_client()
        if not await self._client.connect():
            raise ToolConnectionError(self.tool, f"cannot connect to {self._where}")

    async def _shutdown(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()  # pymodbus starts no task when reconnect_delay is 0

    # --- raw frame watching ----------------------------------------------------------------
    def _trace_packet(self, sending: bool, data: bytes) -> bytes:
        if sending:
            self._garbled = None
            self._in_flight = True
        elif self._garbled is None and (why := self._bad_frame(data)):
            self._garbled = why
            self._fail_pending(ModbusIOException(f"garbled reply: {why}"))
        return data

    def _trace_connect(self, connected: bool) -> None:
        if not connected:
            self._lost = True
            self._fail_pending(ConnectionException("connection closed by the tool"))

    def _bad_frame(self, data: bytes) -> str | None:
        """Why received bytes cannot be a reply from our unit (None while they still could)."""
        unit = self.address.unit
        if self._rtu is not None:
            used, dev_id, _tid, pdu = self._rtu.decode(data)
            if used and not pdu:
                return f"RTU CRC error in {data.hex()}"
            if pdu and dev_id != unit:
                return f"reply from unit {dev_id}, expected {unit}"
            return None
        if len(data) >= 4 and data[2:4] != b"\x00\x00":
            return f"MBAP protocol id {data[2:4].hex()} (must be 0000)"
        if len(data) >= 6 and not 2 <= int.from_bytes(data[4:6], "big") <= 254:
            return f"MBAP length {int.from_bytes(data[4:6], 'big')}"
        if len(data) >= 7 and unit and data[6] != unit:
            return f"reply from unit {data[6]}, expected {unit}"
        return None

    def _fail_pending(self, exc: Exception) -> None:
        client = self._client
        if client is None or not self._in_flight:
            return
        future = client.ctx.response_future
        if not future.done():
            future.set_exception(exc)

    # --- requests --------------------------------------------------------------------------
    async def _request(self, what: str, call: Callable[[Client], Awaitable[ModbusPDU]]) -> ModbusPDU:
        client = self._client
        if client is None or not client.connected:
            raise ToolConnectionError(self.tool, f"{what}: not connected to {self._where}")
        try:
            return await call(client)
        except ConnectionException as exc:
            raise ToolConnectionError(self.tool, f"{what}: {exc}") from exc
        except ModbusIOException as exc:
            if self._garbled is not None:
                raise ProtocolError(self.tool, f"{what}: {self._garbled}") from exc
            if self._lost or not client.connected:
                raise ToolConnectionError(self.tool, f"{what}: link lost ({self._where})") from exc
            raise ToolTimeout(
                self.tool, f"{what}: no reply within {self.timeouts.request_s:g} s ({self._where})"
            ) from exc
        except ModbusException as exc:
            raise ProtocolError(self.tool, f"{what}: {exc}") from exc
        finally:
            self._in_flight = False

    def _plan(self, names: Sequence[str]) -> list[Block]:
        key = tuple(names)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = plan_blocks(self.mb_profile, key)
        return plan

    async def _read(self, names: Sequence[str]) -> dict[str, Value]:
        unit = self.address.unit
        out: dict[str, Value] = {}
        for b in self._plan(names):
            what = f"read {b.table} {b.start}+{b.count}"
            resp = await self._request(what, self._reader(b, unit))
            if resp.isError():
                raise ProtocolError(
                    self.tool, f"{what}: exception {exception_name(resp.exception_code)}"
                )
            try:
                out.update(self._decoder.decode(b, resp.bits if b.bits else resp.registers))
            except ValueError as exc:
                raise ProtocolError(self.tool, f"{what}: {exc}") from exc
        return out

    async def _command(self, name: str, args: Mapping[str, Value]) -> None:
        cmd = self.mb_profile.commands[name]
        missing = [a for a in cmd.args if a not in args]
        extra = [a for a in args if a not in cmd.args]
        if missing or extra:
            raise ToolError(
                self.tool, f"command {name} takes {cmd.args}; missing {missing}, unexpected {extra}"
            )
        try:
            runs = write_runs(self.mb_profile, {a: args[a] for a in cmd.args})
        except ValueError as exc:
            raise CommandRejected(self.tool, f"{name}: cannot encode argument: {exc}") from exc
        unit = self.address.unit
        trigger = self.mb_profile.variables[cmd.write]
        runs.append(("holding", trigger.address, [cmd.value]))
        for table, address, words in runs:
            what = f"{name}: write {table} {address}+{len(words)}"
            resp = await self._request(what, self._writer(table, address, words, unit))
            if resp.isError():
                raise CommandRejected(
                    self.tool, f"{what} rejected: {exception_name(resp.exception_code)}"
                )

    @staticmethod
    def _reader(b: Block, unit: int) -> Callable[[Client], Awaitable[ModbusPDU]]:
        if b.table == "input":
            return lambda c: c.read_input_registers(b.start, count=b.count, device_id=unit)
        if b.table == "holding":
            return lambda c: c.read_holding_registers(b.start, count=b.count, device_id=unit)
        if b.table == "discrete":
            return lambda c: c.read_discrete_inputs(b.start, count=b.count, device_id=unit)
        return lambda c: c.read_coils(b.start, count=b.count, device_id=unit)

    @staticmethod
    def _writer(
        table: str, address: int, words: list[int], unit: int
    ) -> Callable[[Client], Awaitable[ModbusPDU]]:
        """The smallest write function code for a run: FC5/FC6 for one value, FC15/FC16 for more."""
        if table == "coil":
            bits = [bool(w) for w in words]
            if len(bits) == 1:
                return lambda c: c.write_coil(address, bits[0], device_id=unit)
            return lambda c: c.write_coils(address, bits, device_id=unit)
        if len(words) == 1:
            return lambda c: c.write_register(address, words[0], device_id=unit)
        return lambda c: c.write_registers(address, words, device_id=unit)
