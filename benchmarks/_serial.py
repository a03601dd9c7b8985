"""Serial benchmark: DicingSaw.status() through the driver vs. the same STATUS? line sent raw.

Both talk to the same emulated tool through the same server code (wire_time=False, so simulated
baud does not swamp what is measured), each on its own pty: two readers on one tty would steal each
other's replies. Runs alternate in blocks so drift hits both alike.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import serial_asyncio_fast

from benchmarks._timing import compare
from drivers.addresses import SerialAddress
from drivers.channel import Timeouts
from drivers.kinds import DicingSaw
from drivers.profiles import SerialProfile, load_profile
from drivers.transports.serial import SerialChannel
from sim_tools.clock import VirtualClock
from sim_tools.model import EmulatedTool
from sim_tools.physics.dicing_saw import DicingSawPhysics
from sim_tools.servers.serial import SerialToolServer


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

            result = await compare("serial", driver_once, raw_once, n)
        finally:
            await saw.close()
            writer.close()
            async with asyncio.timeout(2):
                await writer.wait_closed()
            for server in servers:
                await server.stop()
            await tool.close()
    return result


if __name__ == "__main__":
    print(asyncio.run(measure(500)))
