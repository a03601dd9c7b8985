"""The embedded amqtt broker in a process of its own: `python -m sim_tools.broker_proc --port N`.

Why: amqtt is Python. As a thread of the emulator process it shares that interpreter's lock, so a
large emulated line and its broker together get one core; on a 2-core machine 200 emulated tools
then miss 30-60 % of 83 ms polls (benchmarks/line.py). In its own process the broker gets a core of
its own, as mosquitto does, without needing mosquitto installed. Always on loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

from sim_tools.broker import EmbeddedBroker, _check_host, _free_port


class BrokerProcess:
    """Start and stop `python -m sim_tools.broker_proc` on 127.0.0.1; `start()` returns the port."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        _check_host(host)
        self.host, self.port = host, port
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self, timeout_s: float = 20.0) -> int:
        self.port = self.port or _free_port(self.host)
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "sim_tools.broker_proc", "--host", self.host, "--port", str(self.port),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        try:
            async with asyncio.timeout(timeout_s):
                while not await self._answers():
                    if self.proc.returncode is not None:
                        err = await self.proc.stderr.read() if self.proc.stderr else b""
                        tail = err.decode()[-500:]
                        raise RuntimeError(f"broker process exited {self.proc.returncode}: {tail}")
                    await asyncio.sleep(0.05)
        except BaseException:
            await self.stop()
            raise
        return self.port

    async def _answers(self) -> bool:
        try:
            _, writer = await asyncio.open_connection(self.host, self.port)
        except OSError:
            return False
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True

    async def stop(self, timeout_s: float = 10.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.returncode is not None:
            return
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), timeout_s)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def serve(host: str, port: int) -> None:
    """Run the broker until SIGTERM or SIGINT."""
    broker = EmbeddedBroker(host=host, port=port)
    await broker.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await broker.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    _check_host(args.host)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
