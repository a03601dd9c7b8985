"""The scale benchmark's emulator process: what `waferline sim up` does (EmulatedLine on the generated
line, endpoints file, serve until SIGTERM), plus a 10 ms ticker on this process's own event loop, so
a missed poll can be traced to the side whose loop was late.

Run by _scale_procs.EmulatorProcess:  python -m benchmarks._scale_emu LINE ENDPOINTS RUN_DIR STATS
SIGUSR1 starts the measuring window (a fresh ticker); SIGUSR2 writes the window's figures to STATS.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from pathlib import Path

from benchmarks._scale_line import fds_needed, raise_nofile
from benchmarks._scale_probe import LagTicker
from drivers.line import load_line
from sim_tools.line import EmulatedLine


async def serve(line_file: Path, endpoints_file: Path, run_dir: Path, stats_file: Path) -> None:
    config = load_line(line_file)
    nofile = raise_nofile(fds_needed(len(config.tools)))  # inherited already; checked again here
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    ticker = LagTicker()

    def new_window() -> None:
        ticker.late_s = []

    async def report() -> None:
        figures = {"event_loop_lag": ticker.figures(), "nofile": nofile}
        tmp = stats_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(figures), encoding="utf-8")
        tmp.replace(stats_file)

    pending: set[asyncio.Task[None]] = set()

    def on_report() -> None:
        task = loop.create_task(report())
        pending.add(task)
        task.add_done_callback(pending.discard)

    for sig, handler in ((signal.SIGTERM, stop.set), (signal.SIGINT, stop.set),
                         (signal.SIGUSR1, new_window), (signal.SIGUSR2, on_report)):
        loop.add_signal_handler(sig, handler)
    async with EmulatedLine(config, run_dir=run_dir) as line:
        assert line.endpoints is not None
        ticker.start()
        line.endpoints.write(endpoints_file)
        await stop.wait()
        await ticker.stop()
        await asyncio.gather(*pending)


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    line_file, endpoints_file, run_dir, stats_file = (Path(a) for a in sys.argv[1:5])
    asyncio.run(serve(line_file, endpoints_file, run_dir, stats_file))


if __name__ == "__main__":
    main()
