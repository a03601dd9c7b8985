"""HSMS benchmark: Etcher.status() through the GEM driver vs. a bare secsgem S1F3/F4 round trip.

Both ask a GEM emulator for the same SVIDs (the status the driver reads: contract, interlocks,
process values). The emulators run in their own `waferline sim up` process, one tool per host
(HSMS-SS has one host per tool), so neither host competes with them for the CPU. secsgem is
thread-based: its blocks run synchronously while the driver's event loop idles between its own
blocks; runs alternate in blocks so drift hits both alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import secsgem.common
import secsgem.gem
import secsgem.hsms
import yaml

from benchmarks._timing import BLOCK, WARMUP
from drivers.factory import make_tool
from drivers.line import Endpoints, LineConfig, apply_endpoints
from drivers.profiles import HsmsProfile, load_profile

REPO = Path(__file__).resolve().parents[1]
TOOL = {"kind": "etcher", "profile": "etcher-hsms", "poll_interval_s": 1,
        "address": {"transport": "hsms", "port": 0, "timers": {"t3": 5}}}


@contextlib.contextmanager
def sim_up(line: dict[str, Any]) -> Iterator[Endpoints]:
    with tempfile.TemporaryDirectory(prefix="waferline-bench-hsms-") as tmp:
        path, eps = Path(tmp) / "line.yaml", Path(tmp) / "endpoints.json"
        path.write_text(yaml.safe_dump(line))
        proc = subprocess.Popen([sys.executable, "-m", "waferline", "sim", "up", "--line", str(path),
                                 "--endpoints-file", str(eps), "--run-dir", str(Path(tmp) / "sim")],
                                cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "WAFERLINE_RUNS_DIR": str(Path(tmp) / "runs")})
        try:
            deadline = time.monotonic() + 60
            while not eps.exists():
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"sim up failed: {proc.stderr.read() if proc.stderr else ''}")
                time.sleep(0.05)
            yield Endpoints.read(eps)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(20)


def secsgem_host(port: int) -> secsgem.gem.GemHostHandler:
    settings = secsgem.hsms.HsmsSettings(address="127.0.0.1", port=port,
                                         connect_mode=secsgem.hsms.HsmsConnectMode.ACTIVE,
                                         device_type=secsgem.common.DeviceType.HOST, session_id=0)
    host = secsgem.gem.GemHostHandler(settings)
    host.enable()
    if not host.waitfor_communicating(10):
        raise RuntimeError("secsgem host never communicating")
    host.go_online()
    return host


async def measure(n: int) -> dict[str, float | str]:
    config = {"name": "benchhsms", "time_scale": 20000,
              "tools": [{"name": "driver1", **TOOL}, {"name": "raw1", **TOOL}]}
    with sim_up(config) as eps:
        line = apply_endpoints(LineConfig.model_validate(config), eps)
        profile = load_profile("etcher-hsms")
        assert isinstance(profile, HsmsProfile)
        tool = make_tool(line.tool("driver1"), line)
        await tool.connect()
        svids = [profile.variables[n].vid for n in tool._status_names]
        raw_port = next(e.address.port for e in eps.tools if e.name == "raw1")  # type: ignore[union-attr]
        host = await asyncio.to_thread(secsgem_host, raw_port)
        s1f3 = host.stream_function(1, 3)

        def raw_block(count: int) -> float:
            t0 = time.perf_counter()
            for _ in range(count):
                reply = host.send_and_waitfor_response(s1f3(svids))
                values = host.settings.streams_functions.decode(reply).get()
                assert len(values) == len(svids)
            return time.perf_counter() - t0

        async def driver_block(count: int) -> float:
            t0 = time.perf_counter()
            for _ in range(count):
                await tool.status()
            return time.perf_counter() - t0

        try:
            raw_block(WARMUP)
            await driver_block(WARMUP)
            driver_s = raw_s = 0.0
            done = 0
            while done < n:
                block = min(BLOCK, n - done)
                raw_s += raw_block(block)
                driver_s += await driver_block(block)
                done += block
        finally:
            await tool.close()
            await asyncio.to_thread(host.disable)
    driver_ms, raw_ms = driver_s / n * 1000, raw_s / n * 1000
    return {"transport": "hsms (vs secsgem)", "driver_ms": round(driver_ms, 4), "raw_ms": round(raw_ms, 4),
            "ratio": round(driver_ms / raw_ms, 3)}


if __name__ == "__main__":
    print(asyncio.run(measure(500)))
