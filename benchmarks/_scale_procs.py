"""The processes around the scale benchmark's controller: the emulators (benchmarks._scale_emu, i.e.
`waferline sim up` plus a lag ticker, in a child process so their CPU and memory are not the
controller's), an optional mosquitto, and psutil figures of each."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import IO, Any

import psutil

from drivers.line import Endpoints
from sim_tools.broker import MosquittoBroker
from sim_tools.broker_proc import BrokerProcess

MB = 1024 * 1024
REPO = Path(__file__).resolve().parents[1]  # `-m benchmarks...` must resolve from any cwd
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 20.0


def usage(proc: psutil.Process) -> dict[str, float]:
    """RSS (MB), CPU seconds (user + system) and open descriptors of one process now; CPU of all
    threads and of its main thread alone (the event loop; in the emulators the other big one is the
    embedded amqtt broker's)."""
    with proc.oneshot():
        cpu = proc.cpu_times()
        main = sum(t.user_time + t.system_time for t in proc.threads() if t.id == proc.pid)
        return {"rss_mb": proc.memory_info().rss / MB, "cpu_s": cpu.user + cpu.system,
                "main_thread_cpu_s": main, "fds": proc.num_fds()}


def cpu_snapshot() -> dict[int, tuple[str, float]]:
    """CPU seconds of every process on the machine now (pid -> short command line, seconds)."""
    out: dict[int, tuple[str, float]] = {}
    for proc in psutil.process_iter(["cmdline", "name", "cpu_times"]):
        info = proc.info
        if info["cpu_times"] is None:
            continue
        what = " ".join(info["cmdline"] or [info["name"] or "?"])[:80]
        out[proc.pid] = (what, info["cpu_times"].user + info["cpu_times"].system)
    return out


def busiest_others(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]],
                   ours: set[int], elapsed: float, top: int = 3) -> list[str]:
    """The processes outside the benchmark that used the most CPU in the window ('% of one core')."""
    used = [(after[p][1] - before.get(p, ("", 0.0))[1], after[p][0]) for p in after if p not in ours]
    used.sort(reverse=True)
    return [f"{cpu / elapsed * 100:.0f}% {what}" for cpu, what in used[:top] if cpu / elapsed >= 0.02]


def nofile_of(proc: psutil.Process) -> list[int] | None:
    """The process's (soft, hard) RLIMIT_NOFILE as the kernel sees it (prlimit; Linux only)."""
    try:
        soft, hard = proc.rlimit(psutil.RLIMIT_NOFILE)
    except (AttributeError, psutil.Error):
        return None
    return [soft, hard]


def _open_log(path: Path) -> IO[bytes]:
    return path.open("ab")


class EmulatorProcess:
    """The emulators in a child process; `start()` waits for its endpoints file."""

    def __init__(self, line_file: Path, workdir: Path) -> None:
        self.line_file = line_file
        self.workdir = workdir
        self.endpoints_file = workdir / "endpoints.json"
        self.stats_file = workdir / "emulator-stats.json"
        self.log_file = workdir / "emulators.log"
        self.proc: asyncio.subprocess.Process | None = None
        self.ps: psutil.Process | None = None
        self.returncode: int | None = None

    async def start(self) -> Endpoints:
        args = [sys.executable, "-m", "benchmarks._scale_emu", str(self.line_file),
                str(self.endpoints_file), str(self.workdir / "run"), str(self.stats_file)]
        log = _open_log(self.log_file)
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log, cwd=REPO)
        finally:
            log.close()
        self.ps = psutil.Process(self.proc.pid)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + START_TIMEOUT_S
        while not self.endpoints_file.exists():
            if self.proc.returncode is not None or loop.time() > deadline:
                await self.stop()
                raise RuntimeError(f"emulator process did not come up (exit {self.returncode}):\n"
                                   f"{self.log_tail()}")
            await asyncio.sleep(0.05)
        return Endpoints.read(self.endpoints_file)

    def usage(self) -> dict[str, float]:
        assert self.ps is not None
        return usage(self.ps)

    def window_starts(self) -> None:
        """The emulators' lag ticker starts a fresh window (SIGUSR1)."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGUSR1)

    async def window_figures(self, timeout_s: float = 5.0) -> dict[str, Any] | None:
        """The emulators' figures for the window (SIGUSR2 makes it write them); None if it does not."""
        if self.proc is None:
            return None
        self.stats_file.unlink(missing_ok=True)
        self.proc.send_signal(signal.SIGUSR2)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while loop.time() < deadline:
            with contextlib.suppress(OSError, ValueError):  # not there yet
                figures: dict[str, Any] = json.loads(self.stats_file.read_text(encoding="utf-8"))
                return figures
            await asyncio.sleep(0.02)
        return None

    def log_tail(self, chars: int = 2000) -> str:
        with contextlib.suppress(OSError):
            return self.log_file.read_text(errors="replace")[-chars:]
        return ""

    async def stop(self) -> None:
        """SIGTERM (the line stops cleanly), SIGKILL if it does not exit in time."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(STOP_TIMEOUT_S):
                    await proc.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        self.returncode = proc.returncode


class BrokerChild:
    """A broker in a process of its own (a third process, next to the controller and the emulators):
    started and stopped by `broker`, its psutil process kept to report its CPU and RSS."""

    broker: MosquittoBroker | BrokerProcess

    def __init__(self) -> None:
        self.ps: psutil.Process | None = None

    def usage(self) -> dict[str, Any] | None:
        if self.ps is None:
            return None
        with contextlib.suppress(psutil.Error):
            return usage(self.ps)
        return None

    async def stop(self) -> None:
        await self.broker.stop()


class Mosquitto(BrokerChild):
    """A mosquitto for broker="mosquitto", started like tests/fixtures/mqtt.py does; its process is
    found among our children by its config directory."""

    def __init__(self, workdir: Path) -> None:
        super().__init__()
        self.mosquitto = MosquittoBroker(workdir)
        self.broker = self.mosquitto
        self.workdir = workdir

    async def start(self) -> int:
        if not MosquittoBroker.available():
            raise RuntimeError("broker='mosquitto' but no mosquitto binary on PATH")
        port = await self.mosquitto.start()
        for child in psutil.Process().children():
            with contextlib.suppress(psutil.Error):
                if str(self.workdir) in " ".join(child.cmdline()):
                    self.ps = child
        return port


class AmqttProcess(BrokerChild):
    """The amqtt broker in its own process (sim_tools.broker_proc) for broker="amqtt-process": the
    same Python broker as the default, on a core of its own instead of a thread of the emulators."""

    def __init__(self) -> None:
        super().__init__()
        self.process = BrokerProcess()
        self.broker = self.process

    async def start(self) -> int:
        port = await self.process.start()
        if self.process.proc is not None:
            self.ps = psutil.Process(self.process.proc.pid)
        return port
