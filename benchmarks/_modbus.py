"""Modbus TCP benchmark: Bonder.status() through the driver vs. the same block reads with bare pymodbus.

Both clients talk to one emulated bonder behind one ModbusToolServer on loopback, so server cost
is identical; the raw side issues exactly the requests the driver's planner makes for status()
(input 0+8, discrete 0+4, holding 0+2) and skips decoding. Runs alternate in blocks so drift hits
both alike.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from pymodbus import FramerType
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient

from benchmarks._timing import compare
from drivers.addresses import ModbusRtuAddress, ModbusTcpAddress
from drivers.channel import Timeouts
from drivers.kinds import Bonder
from drivers.profiles import ModbusProfile, load_profile
from drivers.transports.modbus import ModbusChannel
from drivers.transports.modbus_codec import plan_blocks
from sim_tools.clock import VirtualClock
from sim_tools.model import EmulatedTool
from sim_tools.physics.bonder import BonderPhysics
from sim_tools.servers.modbus import ModbusToolServer


async def measure(n: int) -> dict[str, float | str]:
    profile = load_profile("bonder-modbus")
    assert isinstance(profile, ModbusProfile)
    tool = EmulatedTool("bonder1", BonderPhysics(), VirtualClock(20000))
    server = ModbusToolServer(tool, profile, ModbusTcpAddress(port=0))
    address = await server.start()
    assert isinstance(address, ModbusTcpAddress)
    bonder = Bonder("bonder1", ModbusChannel("bonder1", profile, address, Timeouts(request_s=5)))
    raw = AsyncModbusTcpClient(address.host, port=address.port, timeout=5, retries=0,
                               reconnect_delay=0)
    unit = address.unit
    reads = {
        "input": raw.read_input_registers, "holding": raw.read_holding_registers,
        "discrete": raw.read_discrete_inputs, "coil": raw.read_coils,
    }
    requests = [(reads[b.table], b.start, b.count) for b in plan_blocks(profile, bonder._status_names)]
    try:
        await bonder.connect()
        if not await raw.connect():
            raise RuntimeError(f"raw pymodbus client cannot connect to {address}")

        async def driver_once() -> None:
            await bonder.status()

        async def raw_once() -> None:
            for read, start, count in requests:
                rr = await read(start, count=count, device_id=unit)
                if rr.isError():
                    raise RuntimeError(f"raw read failed: {rr}")

        result = await compare("modbus tcp", driver_once, raw_once, n)
    finally:
        await bonder.close()
        raw.close()
        await server.stop()
        await tool.close()
    return result


async def measure_rtu(n: int) -> dict[str, float | str]:
    """RTU over ptys: one emulated bonder behind two RTU servers (two readers on one pty would steal
    each other's bytes); both sides pay the same emulated wire time at 921600 baud."""
    profile = load_profile("bonder-modbus")
    assert isinstance(profile, ModbusProfile)
    tool = EmulatedTool("bonder1", BonderPhysics(), VirtualClock(20000))
    with tempfile.TemporaryDirectory(prefix="waferline-bench-") as tmp:
        servers = [ModbusToolServer(tool, profile, ModbusRtuAddress(device="pty", baud=921600),
                                    run_dir=Path(tmp) / side) for side in ("driver", "raw")]
        driver_addr, raw_addr = [await s.start() for s in servers]
        assert isinstance(driver_addr, ModbusRtuAddress) and isinstance(raw_addr, ModbusRtuAddress)
        bonder = Bonder("bonder1", ModbusChannel("bonder1", profile, driver_addr, Timeouts(request_s=5)))
        raw = AsyncModbusSerialClient(raw_addr.device, framer=FramerType.RTU, baudrate=raw_addr.baud,
                                      parity=raw_addr.parity, timeout=5, retries=0, reconnect_delay=0)
        reads = {"input": raw.read_input_registers, "holding": raw.read_holding_registers,
                 "discrete": raw.read_discrete_inputs, "coil": raw.read_coils}
        requests = [(reads[b.table], b.start, b.count) for b in plan_blocks(profile, bonder._status_names)]
        try:
            await bonder.connect()
            if not await raw.connect():
                raise RuntimeError(f"raw pymodbus client cannot open {raw_addr.device}")

            async def raw_once() -> None:
                for read, start, count in requests:
                    if (await read(start, count=count, device_id=raw_addr.unit)).isError():
                        raise RuntimeError("raw read failed")

            return await compare("modbus rtu (pty)", bonder.status, raw_once, n)
        finally:
            await bonder.close()
            raw.close()
            for server in servers:
                await server.stop()
            await tool.close()


async def measure_all(n: int) -> list[dict[str, float | str]]:
    return [await measure(n), await measure_rtu(max(50, n // 5))]
