"""200 emulated tools driven at once by one controller process: missed polls, round trips, loop lag,
memory and CPU (issue 5; benchmarks/line.py calls `measure_scale`).

Run:  python -m benchmarks._scale --tools 200 --seconds 20 [--broker amqtt|amqtt-process|mosquitto]
      [--poll-interval S] [--mix default|hsms]
      [--json]

The emulators run in a child process (benchmarks/_scale_emu.py: what `waferline sim up` does with a
generated line from _scale_line.py, plus a lag ticker of its own), so the controller's figures are
its own: one asyncio process connects a driver per tool (drivers.factory.make_tool) and every tool
runs back-to-back recipe jobs with the driver's normal status polling (default_poll_interval of the
line's time scale, or --poll-interval). New jobs start until `seconds` have passed; jobs already
running finish, so the window is a little longer than `seconds`. Missed polls are defined in
_scale_probe.py. With broker="amqtt" the broker is a thread of the emulator process (as `sim up`
runs it); with "amqtt-process" (sim_tools/broker_proc.py) and "mosquitto" it is a third process,
reported on its own (result key "broker_process"). Other load on the machine is
measured and named, because on a shared 2-core box it changes every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import psutil

from benchmarks._scale_line import (
    MIXES,
    build_line,
    fds_needed,
    load_recipes,
    raise_nofile,
    write_line,
)
from benchmarks._scale_probe import LagTicker, ToolProbe, TransportStats
from benchmarks._scale_procs import (
    AmqttProcess,
    EmulatorProcess,
    Mosquitto,
    busiest_others,
    cpu_snapshot,
    nofile_of,
    usage,
)
from benchmarks._scale_report import format_table, print_report
from drivers.factory import default_poll_interval, make_tool
from drivers.line import BrokerConfig, LineConfig, apply_endpoints
from drivers.tool import ProcessState, Recipe

__all__ = ["BROKERS", "format_table", "measure_scale", "print_report"]
BROKERS = ("amqtt", "amqtt-process", "mosquitto")
RECOVER_S = 10.0


async def measure_scale(tools: int = 200, seconds: float = 20.0, *, broker: str = "amqtt",
                        poll_interval_s: float | None = None, mix: str = "default") -> dict[str, Any]:
    """Drive `tools` emulated tools at once for `seconds`; return the figures (see module doc).

    `poll_interval_s` overrides the drivers' default poll interval (e.g. 0.25: a real tool's)."""
    if broker not in BROKERS:
        raise ValueError(f"broker must be one of {BROKERS}, not {broker!r}")
    nofile = raise_nofile(fds_needed(tools))  # before any child starts: they inherit it
    recipes = load_recipes()
    loop = asyncio.get_running_loop()
    with tempfile.TemporaryDirectory(prefix="waferline-scale-") as tmp:
        work = Path(tmp)
        mosquitto: Mosquitto | AmqttProcess | None = (
            Mosquitto(work / "mosquitto") if broker == "mosquitto"
            else AmqttProcess() if broker == "amqtt-process" else None)
        emulators: EmulatorProcess | None = None
        try:
            broker_cfg = BrokerConfig()
            if mosquitto is not None:
                broker_cfg = BrokerConfig(embedded=False, port=await mosquitto.start(),
                                          anonymous=True, tls=False)  # measures the broker alone
            line = build_line(tools, broker_cfg, mix=mix)
            emulators = EmulatorProcess(write_line(line, work / "line.yaml"), work)
            t0 = loop.time()
            endpoints = await emulators.start()
            startup_s = loop.time() - t0
            live = apply_endpoints(line, endpoints)
            if poll_interval_s is not None:
                live = live.model_copy(update={"tools": [
                    t.model_copy(update={"poll_interval_s": poll_interval_s}) for t in live.tools]})
            result = await _drive_line(live, recipes, seconds, emulators, mosquitto)
            result["emulator"]["startup_s"] = round(startup_s, 2)
        finally:
            if emulators is not None:
                await emulators.stop()
            if mosquitto is not None:
                await mosquitto.stop()
        result["emulator"]["exit_code"] = emulators.returncode
        if emulators.returncode not in (0, None):
            result["emulator"]["log_tail"] = emulators.log_tail()
    result.update(broker=broker, seconds=seconds, mix=mix)
    result["nofile"]["controller"] = nofile
    return result


async def _drive_line(line: LineConfig, recipes: dict[str, Recipe], seconds: float,
                      emulators: EmulatorProcess,
                      mosquitto: Mosquitto | AmqttProcess | None) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    me = psutil.Process()
    rss_before = usage(me)["rss_mb"]
    stats = {t: TransportStats() for t in dict.fromkeys(tool.address.transport for tool in line.tools)}
    probes = [ToolProbe(make_tool(cfg, line), stats[cfg.address.transport]) for cfg in line.tools]
    for p in probes:
        p.stats.tools += 1
    t0 = loop.time()
    outcomes = await asyncio.gather(*(p.tool.connect() for p in probes), return_exceptions=True)
    connect_s = loop.time() - t0
    live = []
    for p, outcome in zip(probes, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            p.stats.errors[f"connect {type(outcome).__name__}"] += 1
        else:
            p.stats.connected += 1
            live.append(p)
    rss_connected = usage(me)["rss_mb"]
    ticker = LagTicker()
    ticker.start()
    emulators.window_starts()
    me0, emu0, mq0 = usage(me), emulators.usage(), mosquitto.usage() if mosquitto else None
    sys0, all0 = psutil.cpu_times(), cpu_snapshot()
    t0 = loop.time()
    try:
        await asyncio.gather(*(_drive(p, recipes[p.tool.kind], t0 + seconds) for p in live))
        elapsed = loop.time() - t0
        me1, emu1, mq1 = usage(me), emulators.usage(), mosquitto.usage() if mosquitto else None
        sys1, all1 = psutil.cpu_times(), cpu_snapshot()
        lag = await ticker.stop()
        emu_window = await emulators.window_figures() or {}
    finally:
        await ticker.stop()
        await asyncio.gather(*(p.tool.close() for p in probes), return_exceptions=True)
    per = {t: s.summary(elapsed) for t, s in stats.items()}
    errors: Counter[str] = Counter()
    for s in stats.values():
        errors.update(s.errors)
    own_pids = {me.pid, *(p.pid for p in (emulators.ps, mosquitto.ps if mosquitto else None) if p)}
    poll_s = line.tools[0].poll_interval_s or default_poll_interval(line.time_scale)
    polls = sum(s.polls for s in stats.values())
    result: dict[str, Any] = {
        "tools": len(line.tools), "connected": len(live), "time_scale": line.time_scale,
        "poll_interval_s": round(poll_s, 4), "connect_s": round(connect_s, 2),
        "elapsed_s": round(elapsed, 2), "jobs": sum(s.jobs for s in stats.values()),
        "polls": polls, "polls_per_s": round(polls / elapsed, 1),
        "polls_per_s_nominal": round(len(live) / poll_s, 1),  # one per tool per interval
        "status_reads": sum(s.status_reads for s in stats.values()),
        "missed_polls": (missed := sum(s.missed_gap + s.missed_error for s in stats.values())),
        "missed_pct": round(missed / max(1, polls) * 100, 1),
        "errors": dict(errors), "event_loop_lag": lag, "per_transport": per,
        "machine": {**_machine(sys0, sys1, elapsed, [(me0, me1), (emu0, emu1), (mq0, mq1)]),
                    "busiest_others": busiest_others(all0, all1, own_pids, elapsed)},
        "controller": {
            "rss_before_mb": round(rss_before, 1), "rss_connected_mb": round(rss_connected, 1),
            "rss_end_mb": round(me1["rss_mb"], 1), "fds_end": int(me1["fds"]),
            "rss_per_tool_kb": round((me1["rss_mb"] - rss_before) * 1024 / len(line.tools), 1),
            "cpu_s": round(me1["cpu_s"] - me0["cpu_s"], 2),
            "cpu_core_pct": round((me1["cpu_s"] - me0["cpu_s"]) / elapsed * 100, 1),
        },
        "emulator": {**_process_figures(emulators.proc.pid if emulators.proc else None, emu0, emu1,
                                        elapsed),
                     "event_loop_lag": emu_window.get("event_loop_lag")},
        "nofile": {"emulator": nofile_of(emulators.ps) if emulators.ps else None,
                   "emulator_raise": emu_window.get("nofile")},
    }
    reads = max(1, result["status_reads"])  # CPU per status read: what one poll costs each side
    for side in ("controller", "emulator"):
        result[side]["cpu_ms_per_status_read"] = round(result[side]["cpu_s"] / reads * 1000, 3)
    if mosquitto is not None and mq0 is not None and mq1 is not None:
        result["broker_process"] = _process_figures(mosquitto.ps.pid if mosquitto.ps else None, mq0, mq1,
                                               elapsed)
    return result


def _process_figures(pid: int | None, before: dict[str, float], after: dict[str, float],
                     elapsed: float) -> dict[str, Any]:
    cpu = after["cpu_s"] - before["cpu_s"]
    main = after["main_thread_cpu_s"] - before["main_thread_cpu_s"]
    return {"pid": pid, "rss_start_mb": round(before["rss_mb"], 1), "rss_end_mb": round(after["rss_mb"], 1),
            "cpu_s": round(cpu, 2), "cpu_core_pct": round(cpu / elapsed * 100, 1),
            "main_thread_cpu_s": round(main, 2), "main_thread_core_pct": round(main / elapsed * 100, 1),
            "fds_end": int(after["fds"]),
            "cpu_total_s": round(after["cpu_s"], 2)}


def _machine(before: Any, after: Any, elapsed: float,
             ours: list[tuple[dict[str, float] | None, dict[str, float] | None]]) -> dict[str, Any]:
    """Busy CPU of the whole machine in the window and how much of it was NOT the benchmark's own
    processes (other jobs on a shared box distort every figure above; this says by how much)."""
    def busy(t: Any) -> float:
        return float(sum(t) - t.idle - getattr(t, "iowait", 0.0))

    def pct(seconds: float) -> float:
        return round(seconds / elapsed * 100, 1)

    total = busy(after) - busy(before)
    own = sum(b["cpu_s"] - a["cpu_s"] for a, b in ours if a is not None and b is not None)
    irq = sum(getattr(after, f, 0.0) - getattr(before, f, 0.0) for f in ("irq", "softirq"))
    steal = getattr(after, "steal", 0.0) - getattr(before, "steal", 0.0)
    return {"cores": psutil.cpu_count(), "busy_core_pct": pct(total),
            "others_core_pct": pct(max(0.0, total - own)), "irq_core_pct": pct(irq),
            "steal_core_pct": pct(steal)}


async def _drive(probe: ToolProbe, recipe: Recipe, deadline: float) -> None:
    """Back-to-back jobs until the deadline; an error is counted and the tool brought back to IDLE."""
    loop = asyncio.get_running_loop()
    tool, stats = probe.tool, probe.stats
    while loop.time() < deadline:
        probe.job_begins()
        try:
            await tool.run(recipe, monitor=probe.on_poll)
        except Exception as exc:  # every failure is a figure of the benchmark, never its end
            stats.errors[type(exc).__name__] += 1
            if not await _recover(probe):
                stats.errors["unrecovered (tool dropped)"] += 1
                return
        else:
            stats.jobs += 1


async def _recover(probe: ToolProbe) -> bool:
    """Reset an alarm, abort a job still running, until the tool is IDLE again (or give up)."""
    loop = asyncio.get_running_loop()
    tool = probe.tool
    end = loop.time() + RECOVER_S
    while loop.time() < end:
        try:
            st = await tool.status()
            if st.alarm is not None:
                await tool.reset()
            elif st.state is ProcessState.IDLE:
                return True
            else:
                await tool.abort()
        except Exception as exc:
            probe.stats.errors[f"recover {type(exc).__name__}"] += 1
        await asyncio.sleep(tool.poll_interval_s)
    return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tools", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--broker", choices=BROKERS, default="amqtt")
    parser.add_argument("--poll-interval", type=float, default=None,
                        help="seconds between status polls (default: the drivers' default)")
    parser.add_argument("--mix", choices=sorted(MIXES), default="default",
                        help="default: Modbus TCP/RTU, serial and MQTT; hsms: every tool GEM over HSMS")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    result = asyncio.run(measure_scale(args.tools, args.seconds, broker=args.broker,
                                       poll_interval_s=args.poll_interval, mix=args.mix))
    print_report(result)
    if args.json:
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
