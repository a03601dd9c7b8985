"""Modbus TCP / RTU front end of an emulated tool, on pymodbus's simulator datastore.

Registers are a view of the tool model, never its state: every read refreshes the requested table
from `tool.read()` (so a rejected start cannot leave a new job_id readable), writes of command
arguments are staged, and a write to a command trigger register calls `tool.command()` with them.
TCP uses pymodbus's ModbusTcpServer; RTU runs pymodbus's RTU framer and the same datastore over a
pty master (pymodbus's serial server can only open a device path, and a pty master has none).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from pathlib import Path
from typing import Any

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice
from pymodbus.simulator.simutils import SimUtils

from drivers.addresses import ModbusRtuAddress, ModbusTcpAddress
from drivers.netcheck import loopback_problem
from drivers.profiles.base import Value
from drivers.profiles.modbus import ModbusProfile, ModbusTable, ModbusVariable
from drivers.transports.modbus_codec import decode, encode
from sim_tools.faults import FaultKind
from sim_tools.model import EmulatedTool, Refused
from sim_tools.servers.modbus_frames import garble
from sim_tools.servers.modbus_rtu import RtuPtyServer
from sim_tools.servers.modbus_wire import TcpPipeline

log = logging.getLogger(__name__)
TABLES: tuple[ModbusTable, ...] = ("coil", "discrete", "holding", "input")
FC_TABLE: dict[int, ModbusTable] = {
    1: "coil", 5: "coil", 15: "coil", 2: "discrete", 3: "holding", 6: "holding", 16: "holding",
    4: "input",
}


def _unpack(table: ModbusTable, start: int, registers: list[int]) -> tuple[list[int], int]:
    """Values by address (bit tables unpacked from pymodbus's 16-bit words), address of [0]."""
    if table in ("coil", "discrete"):
        return [int(b) for b in SimUtils.registersToBits(registers)], start * 16
    return list(registers), start


def _pack(table: ModbusTable, view: list[int], registers: list[int]) -> None:
    """Write a view back in place: pymodbus keeps a reference to `registers`."""
    registers[:] = SimUtils.bitsToRegisters([bool(b) for b in view]) if table in (
        "coil", "discrete") else view


class _TcpServer(ModbusTcpServer):
    """Gives each connection its own trace_packet so link faults can act on that connection."""

    def __init__(self, owner: ModbusToolServer, device: SimDevice, port: int) -> None:
        super().__init__(device, address=("127.0.0.1", port))
        self._owner = owner

    def callback_new_connection(self) -> Any:
        handler = super().callback_new_connection()
        handler.trace_packet = functools.partial(self._owner._tcp_trace, handler)
        handler.callback_data = TcpPipeline(handler).callback_data  # every pipelined request
        handler.max_buffer_size = 1 << 20  # pymodbus drops a read of over 260 bytes whole
        return handler


class ModbusToolServer:
    def __init__(
        self,
        tool: EmulatedTool,
        profile: ModbusProfile,
        address: ModbusTcpAddress | ModbusRtuAddress,
        *,
        run_dir: Path | None = None,
    ) -> None:
        self.tool = tool
        self.profile = profile
        self.address = address
        self.run_dir = run_dir
        known = set(tool.snapshot())
        self._vars: dict[ModbusTable, list[tuple[str, ModbusVariable]]] = {t: [] for t in TABLES}
        for name, var in profile.variables.items():
            self._vars[var.table].append((name, var))
        self._shown = {t: [n for n, _ in vs if n in known] for t, vs in self._vars.items()}
        self._commands = {(c.write, c.value): n for n, c in profile.commands.items()}
        self._triggers = {c.write for c in profile.commands.values()}
        self._staged: dict[str, Value] = {}
        self._held: set[asyncio.Task[Any]] = set()
        self._timers: list[asyncio.TimerHandle] = []
        self._tcp: _TcpServer | None = None
        self._rtu: RtuPtyServer | None = None
        self.live: ModbusTcpAddress | ModbusRtuAddress | None = None

    # --- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> ModbusTcpAddress | ModbusRtuAddress:
        if isinstance(self.address, ModbusTcpAddress):
            if (why := loopback_problem(self.address.host)) is not None:  # the line's own rule
                raise ValueError(f"the emulator serves loopback only: {why}")
            self._tcp = _TcpServer(self, self._device(), self.address.port)
            try:
                await self._tcp.serve_forever(background=True)
            except RuntimeError:  # pymodbus's word for a failed bind (it logs the errno itself)
                self._tcp = None
                raise OSError(f"cannot listen on 127.0.0.1:{self.address.port} (in use?)") from None
            # Binding port 0 lets the kernel pick a free port atomically; read back which one.
            port = self._tcp.transport.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
            self.live = self.address.model_copy(update={"port": port, "host": "127.0.0.1"})
        else:
            self._rtu = RtuPtyServer(self.tool.name, self._device, self.tool.faults, self.run_dir)
            self.live = self._rtu.start(self.address)
        log.info("%s: modbus server on %s", self.tool.name, self.live)
        return self.live

    async def stop(self) -> None:
        if self._tcp is not None:
            await self._tcp.shutdown()
            self._tcp = None
        if self._rtu is not None:
            await self._rtu.stop()
            self._rtu = None
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        tasks = list(self._held)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _device(self) -> SimDevice:
        """One block per table spanning address 0..last, so planned reads over gaps succeed."""
        blocks: list[list[SimData]] = []
        for table in TABLES:
            end = max((v.address + v.width for _, v in self._vars[table]), default=1)
            if table in ("coil", "discrete"):
                nbits = (end + 15) // 16 * 16
                blocks.append([SimData(0, values=[False] * nbits, datatype=DataType.BITS)])
            else:
                blocks.append([SimData(0, count=end, values=0, datatype=DataType.REGISTERS)])
        c, d, h, i = blocks
        return SimDevice(id=self.address.unit, simdata=(c, d, h, i), action=self._action)

    # --- the datastore hook (every access, before pymodbus applies it) ---------------------------
    async def _action(  # pymodbus's SimAction signature
        self, fc: int, start: int, address: int, _count: int, registers: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        if set_values is None and fc in (5, 6):
            return None  # pymodbus reads back a single write to echo it; nothing to do
        if isinstance(self.address, ModbusTcpAddress) and self.tool.faults.fires(FaultKind.SILENCE):
            await self._hold_forever()  # RTU handles silence in its own loop
        table = FC_TABLE[fc]
        try:
            if set_values is None:
                self._refresh(table, start, registers)
                return None
            return self._write(table, start, address, registers, [int(v) for v in set_values])
        except ValueError as exc:
            log.warning("%s: modbus %s access failed: %s", self.tool.name, table, exc)
            return ExcCodes.ILLEGAL_VALUE if set_values is not None else ExcCodes.DEVICE_FAILURE

    def _refresh(self, table: ModbusTable, start: int, registers: list[int]) -> None:
        view, base = _unpack(table, start, registers)
        values = self.tool.read(self._shown[table])
        for name, var in self._vars[table]:
            if name in values:
                off = var.address - base
                view[off : off + var.width] = encode(self.profile, var, values[name])
        _pack(table, view, registers)

    def _write(
        self, table: ModbusTable, start: int, address: int, registers: list[int], new: list[int]
    ) -> ExcCodes | None:
        view, base = _unpack(table, start, registers)
        view[address - base : address - base + len(new)] = new
        triggered: list[tuple[str, int]] = []
        for name, var in self._vars[table]:
            if var.address < address + len(new) and var.address + var.width > address:
                off = var.address - base
                value = decode(self.profile, var, view[off : off + var.width])
                if name in self._triggers:
                    triggered.append((name, int(value)))
                else:
                    self._staged[name] = value
        for trigger, value in triggered:
            if (exc := self._run_command(trigger, value)) is not None:
                return exc
        return None

    def _run_command(self, trigger: str, value: int) -> ExcCodes | None:
        name = self._commands.get((trigger, value))
        if name is None:
            return None if value == 0 else ExcCodes.ILLEGAL_VALUE
        cmd = self.profile.commands[name]
        current = self.tool.snapshot()
        args = {a: self._staged.get(a, current.get(a, 0)) for a in cmd.args}
        for a in cmd.args:
            self._staged.pop(a, None)
        try:
            self.tool.command(name, args)
        except Refused as exc:
            log.info("%s: %s refused: %s", self.tool.name, name, exc.text)
            return ExcCodes.DEVICE_BUSY if exc.code == 1 else ExcCodes.ILLEGAL_VALUE
        return None

    async def _hold_forever(self) -> None:
        """Never answer this request, without letting its pymodbus task outlive stop()."""
        task = asyncio.current_task()
        assert task is not None
        self._held.add(task)
        try:
            await asyncio.Event().wait()
        finally:
            self._held.discard(task)

    # --- TCP link faults, per connection -------------------------------------------------------
    def _tcp_trace(self, handler: Any, sending: bool, data: bytes) -> bytes:
        faults = self.tool.faults
        if not sending:
            complete = len(data) >= 6 and len(data) >= 6 + int.from_bytes(data[4:6], "big")
            if complete and faults.fires(FaultKind.LINK_DROP):
                log.info("%s: link_drop fault: closing the client's connection", self.tool.name)
                handler.close()
                return b""
            return data
        if faults.fires(FaultKind.GARBLE):
            data = garble(data)
        if (spec := faults.fires(FaultKind.DELAY)) is not None:
            loop = asyncio.get_running_loop()
            self._timers = [t for t in self._timers if t.when() > loop.time()]
            self._timers.append(loop.call_later(spec.delay_s, self._late_write, handler, data))
            return b""
        return data

    @staticmethod
    def _late_write(handler: Any, data: bytes) -> None:
        if handler.transport is not None:
            handler.transport.write(data)
