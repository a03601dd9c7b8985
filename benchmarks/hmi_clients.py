"""What 50 live HMI clients cost, on the 200-tool scale line with a run going.

Run:  python -m benchmarks.hmi_clients [--tools 200] [--clients 50] [--window 15]

Three processes besides this one: the 200 emulated tools (benchmarks/_scale_emu.py, as in the scale
benchmark), a controller running Flow A lots on that line (`waferline run --stacks 10`), and `waferline
hmi` watching both. Windows of `--window` seconds alternate: no browser, then `--clients` live clients,
half on the line page (an httpx stream of /api/events with the tools), half on the run page (the
alarms stream, and the run's data read once a second, as the page does).
For each window it prints the CPU (share of one core) of the controller, the HMI and the emulators,
and the SSE messages the clients received. The HMI reads the tools and journals once for everyone,
so clients should cost the HMI a little and the controller nothing measurable (target: the controller
< 10 % of one core more).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

from benchmarks._scale_line import build_line, fds_needed, raise_nofile, write_line
from benchmarks._scale_procs import EmulatorProcess
from drivers.line import BrokerConfig
from waferline.hmi.users import add_user

PASSWORD = "benchmark password 1"


def cpu(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return float(t.user + t.system + t.children_user + t.children_system)


async def client(url: str, run_id: str | None, stop: asyncio.Event, counts: list[int],
                 line_page: bool, ready: list[int]) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        page = await http.get("/login")
        csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
        await http.post("/login", data={"user": "viewer", "password": PASSWORD, "csrf": csrf})
        ready[0] += 1  # logins (an argon2 check each) are not what is measured

        async def pages() -> None:
            while run_id is not None and not line_page:
                await http.get(f"/api/runs/{run_id}")
                await asyncio.sleep(1.0)

        poller = asyncio.create_task(pages())
        try:
            topics = "tools,alarms" if line_page else "alarms"  # what the page subscribes to
            async with http.stream("GET", f"/api/events?topics={topics}") as events:
                async for line in events.aiter_lines():
                    if line.startswith("data: "):
                        counts[0] += 1
                    if stop.is_set():
                        return
        finally:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller


async def window(procs: dict[str, psutil.Process], seconds: float, clients: int, url: str,
                 run_id: str | None) -> dict[str, Any]:
    stop, counts, ready = asyncio.Event(), [0], [0]
    tasks = [asyncio.create_task(client(url, run_id, stop, counts, i % 2 == 1, ready))
             for i in range(clients)]
    for _ in range(600):  # every client logged in
        if ready[0] >= clients:
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.0)  # and streaming
    before = {k: cpu(p) for k, p in procs.items()}
    t0 = time.monotonic()
    await asyncio.sleep(seconds)
    elapsed = time.monotonic() - t0
    after = {k: cpu(p) for k, p in procs.items()}
    stop.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {"clients": clients, "messages": counts[0],
            **{k: 100 * (after[k] - before[k]) / elapsed for k in procs}}


async def measure(tools: int, clients: int, seconds: float) -> list[dict[str, Any]]:
    raise_nofile(fds_needed(tools))
    with tempfile.TemporaryDirectory(prefix="waferline-hmi-bench-") as tmp:
        work = Path(tmp)
        line = build_line(tools, BrokerConfig())
        line_file = write_line(line, work / "line.yaml")
        emulators = EmulatorProcess(line_file, work)
        await emulators.start()
        env = {**os.environ, "WAFERLINE_RUNS_DIR": str(work / "runs"),
               "WAFERLINE_HMI_USERS": str(work / "users.json")}
        add_user("viewer", "operator", PASSWORD, work / "users.json")
        eps = str(emulators.endpoints_file)
        wl = ["-m", "waferline"]
        run = await asyncio.create_subprocess_exec(
            sys.executable, *wl, "run", "flow-a", "--stacks", "10", "--line", str(line_file),
            "--endpoints", eps, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port = 18000 + os.getpid() % 1000
        hmi = await asyncio.create_subprocess_exec(
            sys.executable, *wl, "hmi", "--line", str(line_file), "--endpoints", eps, "--port", str(port),
            "--state-dir", str(work / "hmi"), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        rows = []
        try:
            async with httpx.AsyncClient(timeout=1) as probe:
                for _ in range(100):
                    with contextlib.suppress(httpx.TransportError):
                        if (await probe.get(url + "/login")).status_code == 200:
                            break
                    await asyncio.sleep(0.2)
            runs = work / "runs"
            run_id = next(iter(sorted(p.name for p in runs.iterdir())), None) if runs.exists() else None
            procs = {"controller": psutil.Process(run.pid), "hmi": psutil.Process(hmi.pid)}
            if emulators.ps is not None:
                procs["emulators"] = emulators.ps
            for n in (0, clients, 0, clients):
                if run.returncode is not None:
                    break
                rows.append(await window(procs, seconds, n, url, run_id))
        finally:
            for proc in (hmi, run):
                if proc.returncode is None:
                    proc.terminate()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(proc.wait(), 20)
            await emulators.stop()
    return rows


async def attach(url: str, clients: int) -> None:
    """Keep `clients` live clients on the HMI at `url` until killed (benchmarks.sequencer --hmi-clients):
    half on the line page, half on the newest run's page; prints "ready" once all are logged in."""
    stop, counts, ready = asyncio.Event(), [0], [0]

    async def newest_run() -> str | None:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            page = await http.get("/login")
            csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
            await http.post("/login", data={"user": "viewer", "password": PASSWORD, "csrf": csrf})
            runs = (await http.get("/api/runs")).json()["runs"]
            return runs[0]["id"] if runs else None

    tasks = [asyncio.create_task(client(url, await newest_run() if i % 2 == 0 else None, stop, counts,
                                        i % 2 == 1, ready)) for i in range(clients)]
    for _ in range(1200):  # two minutes for every login (an argon2 check each)
        if ready[0] >= clients:
            break
        await asyncio.sleep(0.1)
    print("ready", flush=True)
    await asyncio.gather(*tasks, return_exceptions=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tools", type=int, default=200)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--window", type=float, default=15.0)
    parser.add_argument("--attach", default=None, help="only keep --clients clients on the HMI at this URL")
    args = parser.parse_args()
    if args.attach:
        asyncio.run(attach(args.attach, args.clients))
        return
    rows = asyncio.run(measure(args.tools, args.clients, args.window))
    print(f"{args.tools} tools, a Flow A lot running; CPU in % of one core per window of {args.window:g} s")
    print(f"{'clients':>8}{'SSE msgs':>10}{'controller':>12}{'hmi':>8}{'emulators':>11}")
    for r in rows:
        print(f"{r['clients']:>8}{r['messages']:>10}{r['controller']:>12.1f}{r['hmi']:>8.1f}"
              f"{r.get('emulators', float('nan')):>11.1f}")


if __name__ == "__main__":
    main()
