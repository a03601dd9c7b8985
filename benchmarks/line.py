"""The line at scale: a lot of stacks over pools of tools against the bottleneck bound, and 200
emulated tools driven at once.

Run:  python -m benchmarks.line [--stacks 25] [--time-scale 20000] [--tools 200] [--seconds 20]
      [--skip-lot] [--skip-scale]

Part 1, throughput: `--stacks` stacks of Flow A (4 wafers each) as one lot through
configs/lines/pools.yaml (two coaters, platers, etchers and sputterers; one of each other kind), all
emulated in-process over their real protocols. The run's journal gives (sequencer/reports/accounting.py):
  throughput  completed stacks per tool-hour of makespan (first job start to last job end)
  bound       min over kinds of m_k / w_k: pool size over the mean tool time a stack occupies that
              kind (measured in this run, so the bound uses the same job times the lot saw)
  ratio       throughput / bound = the bottleneck pool's utilization over the makespan. Target >= 0.95.
It cannot reach 1: the bottleneck waits for the first stack to arrive and idles while the last one
finishes its final steps, and a stack uses one bottleneck tool at a time. Wall time grows with the
lot; at time_scale 20000 one tool-hour is 0.18 s, so 25 stacks take about a minute.

`--compare` runs the lot again with the `lot_order` dispatch rule (earliest stack first everywhere).

Part 2, scale (benchmarks/_scale.py): `--tools` emulated tools of all kinds on every transport, in a
separate process, driven at once by one controller process for `--seconds`: missed polls, status
round trips, event-loop lag and memory.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from typing import Any

from drivers.line import apply_endpoints, load_line
from sequencer.reports.accounting import account
from sequencer.run.dispatcher import DispatchRule
from sequencer.run.journal import read_events
from sequencer.run.run import start_run
from sequencer.run.rundir import JOURNAL, RUNS_DIR_ENV
from sim_tools.line import EmulatedLine

TARGET = 0.95


async def measure_lot(stacks: int, time_scale: float, flow: str = "flow-a", line: str = "pools",
                      rule: DispatchRule = "most_steps_left") -> dict[str, Any]:
    """Run one lot on the pooled emulated line; the accounting of its journal."""
    config = load_line(line).model_copy(update={"time_scale": time_scale})
    with tempfile.TemporaryDirectory() as runs:
        os.environ[RUNS_DIR_ENV] = runs
        async with EmulatedLine(config) as emulated:
            assert emulated.endpoints is not None
            live = apply_endpoints(config, emulated.endpoints)
            t0 = time.perf_counter()
            outcome = await start_run(flow, live, stacks=stacks, rule=rule)
            wall = time.perf_counter() - t0
        acc = account(read_events(outcome.directory / JOURNAL))
    return {
        "stacks": stacks, "rule": rule, "state": outcome.state.value, "claims_ok": outcome.claims_ok,
        "wall_s": wall,
        "steps": len(acc.jobs), "makespan_h": acc.makespan.tool / 3600,
        "throughput_per_h": acc.throughput_per_hour, "bound_per_h": acc.bound_per_hour,
        "bottleneck": acc.bottleneck, "ratio": acc.ratio,
        "kinds": {k.kind: {"pool": len(k.pool), "w_h": k.occupancy_per_stack.tool / 3600,
                           "utilization": k.utilization} for k in acc.kinds},
    }


def print_lot(r: dict[str, Any]) -> None:
    print(f"lot: {r['stacks']} stacks of Flow A on the pooled line, rule {r['rule']} -> {r['state']}, "
          f"claims ok: {r['claims_ok']}, {r['steps']} process jobs in {r['wall_s']:.1f} s wall")
    print(f"{'kind':14s} {'pool':>4s} {'h/stack':>8s} {'bound/h':>8s} {'utilization':>11s}")
    for kind, k in sorted(r["kinds"].items(), key=lambda kv: -kv[1]["w_h"] / kv[1]["pool"]):
        bound = k["pool"] / k["w_h"] if k["w_h"] else float("inf")
        print(f"{kind:14s} {k['pool']:4d} {k['w_h']:8.2f} {bound:8.4f} {k['utilization']:11.3f}")
    ok = r["ratio"] is not None and r["ratio"] >= TARGET
    print(f"makespan {r['makespan_h']:.1f} tool-h; throughput {r['throughput_per_h']:.4f} stacks/h; "
          f"bottleneck {r['bottleneck']} bound {r['bound_per_h']:.4f} stacks/h")
    verdict = "met" if ok else "MISSED"
    print(f"throughput / bottleneck bound = {r['ratio']:.3f} (target >= {TARGET}: {verdict})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stacks", type=int, default=25)
    parser.add_argument("--time-scale", type=float, default=20000.0)
    parser.add_argument("--tools", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--broker", default="amqtt", choices=["amqtt", "amqtt-process", "mosquitto"])
    parser.add_argument("--skip-lot", action="store_true")
    parser.add_argument("--compare", action="store_true", help="also run the lot with the lot_order rule")
    parser.add_argument("--skip-scale", action="store_true")
    args = parser.parse_args()
    if not args.skip_lot:
        print_lot(asyncio.run(measure_lot(args.stacks, args.time_scale)))
        if args.compare:
            print_lot(asyncio.run(measure_lot(args.stacks, args.time_scale, rule="lot_order")))
    if not args.skip_scale:
        from benchmarks._scale import measure_scale, print_report

        print_report(asyncio.run(measure_scale(args.tools, args.seconds, broker=args.broker)))


if __name__ == "__main__":
    main()
