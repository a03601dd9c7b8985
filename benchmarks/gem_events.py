"""Event-driven completion (S6F11) against polling on the fab line: how long after a job ends on its
tool does the next step's job start, over Flow A.

Run:  python -m benchmarks.gem_events [--wafers 4] [--polls 0.25,0.0025]

The fab line (configs/lines/fab.yaml, nine GEM tools over HSMS) runs in-process so the tools' own
clocks can be read: every job's start and end are stamped on the emulated tool (wall seconds). For
each job, the gap is its start minus the latest end of another job before it: the time the line sat
idle between one step and the next. The same flow runs with collection events on (a job's end is an
S6F11 that wakes the waiting driver) and off (`events: false`: the driver only polls), at each poll
interval: 0.25 s is what a real floor polls at, 2.5 ms what the emulated line polls at by default.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from drivers.line import LineConfig, apply_endpoints, load_line
from sequencer.run.run import start_run
from sim_tools.line import EmulatedLine
from sim_tools.model import EmulatedTool

FLOW = "flow-a"


def stamp(tool: EmulatedTool, jobs: list[tuple[float, float]]) -> None:
    """Record (start, end) wall times of every job the tool runs."""
    start, finish = tool._start, tool._finish
    open_: dict[str, float] = {}

    def timed_start(args: Any) -> None:
        start(args)
        open_["t"] = time.perf_counter()

    def timed_finish(outcome: str) -> None:
        finish(outcome)
        if "t" in open_:
            jobs.append((open_.pop("t"), time.perf_counter()))

    tool._start, tool._finish = timed_start, timed_finish  # type: ignore[method-assign]


def gaps(jobs: list[tuple[float, float]]) -> list[float]:
    jobs = sorted(jobs)
    out = []
    for i, (start, _) in enumerate(jobs):
        ends = [end for s, end in jobs[:i] if end <= start]
        if ends:
            out.append(start - max(ends))
    return out


async def one(line: LineConfig, events: bool, poll_s: float, wafers: int) -> dict[str, Any]:
    tools = [t.model_copy(update={"poll_interval_s": poll_s,
                                  "address": t.address.model_copy(update={"events": events})})
             for t in line.tools]
    config = line.model_copy(update={"tools": tools})
    jobs: list[tuple[float, float]] = []
    async with EmulatedLine(config) as emulated:
        assert emulated.endpoints is not None
        for tool in emulated.tools.values():
            stamp(tool, jobs)
        t0 = time.perf_counter()
        outcome = await start_run(FLOW, apply_endpoints(config, emulated.endpoints), wafers=wafers)
        elapsed = time.perf_counter() - t0
    g = sorted(gaps(jobs))
    return {"events": events, "poll_s": poll_s, "state": str(outcome.state), "steps": len(jobs),
            "median_ms": statistics.median(g) * 1000, "p90_ms": g[int(0.9 * (len(g) - 1))] * 1000,
            "mean_ms": statistics.fmean(g) * 1000, "run_s": elapsed}


async def measure(wafers: int, polls: list[float]) -> list[dict[str, Any]]:
    line = load_line("fab")
    rows = []
    for poll_s in polls:
        for events in (True, False, True, False):  # alternate: drift hits both alike
            rows.append(await one(line, events, poll_s, wafers))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--wafers", type=int, default=4)
    parser.add_argument("--polls", default="0.25,0.0025", help="poll intervals (s), comma-separated")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="waferline-bench-events-") as runs:
        os.environ["WAFERLINE_RUNS_DIR"] = str(Path(runs))
        rows = asyncio.run(measure(args.wafers, [float(p) for p in args.polls.split(",")]))
    print(f"{FLOW} on the fab line, {args.wafers} wafers: time from a job's end to the next job's start")
    print(f"{'completion':<12}{'poll s':>8}{'steps':>7}{'median ms':>11}{'p90 ms':>9}{'mean ms':>9}"
          f"{'run s':>8}  state")
    for r in rows:
        how = "S6F11" if r["events"] else "polling"
        print(f"{how:<12}{r['poll_s']:>8g}{r['steps']:>7}{r['median_ms']:>11.2f}{r['p90_ms']:>9.2f}"
              f"{r['mean_ms']:>9.2f}{r['run_s']:>8.2f}  {r['state']}")


if __name__ == "__main__":
    main()
