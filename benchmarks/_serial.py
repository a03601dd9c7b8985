"""Serial benchmark: DicingSaw.status() through the driver vs. the same STATUS? line sent raw.

Both talk to the same emulated tool through the same server code (wire_time=False, so simulated
baud does not swamp what is measured), each on its own pty: two readers on one tty would steal each
other's replies. Runs alternate in blocks so drift hits both alike.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import serial_asyncio_fast

from drivers.addresses import SerialAddress
from drivers.channel import Timeouts
from drivers.kinds import DicingSaw
from drivers.profiles import SerialProfile, load_profile
from drivers.transports.serial import SerialChannel
from sim_tools.clock import VirtualClock
from sim_tools.model import EmulatedTool
from sim_tools.physics.dicing_saw import DicingSawPhysics
from sim_tools.servers.serial import SerialToolServer

BLOCK = 10
WARMUP = 20


async def measure(n: int) -> dict[str, float | str]:
    profile = load_profile("dicing_saw-serial")
    assert isinstance(profile, SerialProfile)
    tool = EmulatedTool("saw1", DicingSawPhysics(), VirtualClock(20000))
    with tempfile.TemporaryDirectory(prefix="waferline-bench-") as run_dir:
        servers = [
            SerialToolServer(tool, profile, SerialAddress(url="pty"),
                             run_dir=Path(run_dir) / side, wire_time=False)
            for side in ("driver", "raw")
        ]
        address, raw_address = [await s.start() for s in servers]
        channel = SerialChannel("saw1", profile, address, Timeouts(request_s=5))
        saw = DicingSaw("saw1", channel, time_scale=20000)
        reader, writer = await serial_asyncio_fast.open_serial_connection(
            url=raw_address.url, baudrate=raw_address.baud
        )
        try:
            await saw.connect()

            async def driver_once() -> None:
                await saw.status()

            async def raw_once() -> None:
                writer.write(b"STATUS?\r\n")
                async with asyncio.timeout(5):
                    await reader.readuntil(b"\r\n")

            for _ in range(WARMUP):
                await driver_once()
                await raw_once()
            driver_s = raw_s = 0.0
            done = 0
            while done < n:
                block = min(BLOCK, n - done)
                raw_s += await _time(raw_once, block)
                driver_s += await _time(driver_once, block)
                done += block
        finally:
            await saw.close()
            writer.close()
            async with asyncio.timeout(2):
                await writer.wait_closed()
            for server in servers:
                await server.stop()
            await tool.close()
    driver_ms = driver_s / n * 1000
    raw_ms = raw_s / n * 1000
    return {
        "transport": "serial",
        "driver_ms": round(driver_ms, 4),
        "raw_ms": round(raw_ms, 4),
        "ratio": round(driver_ms / raw_ms, 3),
    }


async def _time(op: Callable[[], Awaitable[None]], count: int) -> float:
    t0 = time.perf_counter()
    for _ in range(count):
        await op()
    return time.perf_counter() - t0


if __name__ == "__main__":
    print(asyncio.run(measure(500)))
