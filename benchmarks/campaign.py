"""Fault campaign: N seeded, randomized fault runs of Flow A (2 wafers), the campaign acting as operator.

Run:  python -m benchmarks.campaign [--runs 200] [--seed 1] [--time-scale 20000] [--line emulated|fab]
      [--json FILE]

One `waferline sim up` of the default line serves every run in its own process (tools outlive a
killed controller, as real tools do). Each run starts `waferline run` as a process and injects one
fault drawn from the seed: link faults (silence, garble, delay, link drop) for a while, process faults
(alarm, door opened, EMO pressed, drift, stuck busy, off-target, power cycle of a tool) on a tool's
next job, a restart of the MQTT broker, kill -9 of the controller mid-step then `waferline resume`,
or kill -9 while HELD then resume. On the fab line (every tool GEM over HSMS) a separate of the HSMS
session takes the broker restart's place. Whenever the run is HELD the campaign acts as an operator would:
it clears the fault, closes doors and EMO, resets alarms and aborts a stuck or paused job through
the run, scraps a stack only when one of its wafers is ABORTED or UNKNOWN, and restarts otherwise.

It prints outcomes and, from the emulators' own job ledger (not the journal): doubled steps, lost
steps, interlock violations, tracebacks, stacks scrapped and why, and stacks scrapped over a step
the tool completed. Target: 0 doubled, 0 lost, 0 violations, 0 tracebacks, every door or EMO opened
mid-job ABORTED, 0 good stacks scrapped.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

import yaml

from benchmarks._campaign_audit import RunAudit, audit, new_ledger_entries
from benchmarks._campaign_operator import Operator
from drivers.line import LINE_DIR
from sequencer.process.flow import expand, load_flow
from sequencer.run.roles import ROLES_ENV

FAULTS = ("silence", "garble", "delay", "link_drop", "alarm", "door_open", "emo", "drift", "stuck_busy",
          "off_target", "power_cycle", "broker_restart", "kill9", "kill9_held")
# the fab line has no broker; its GEM tools can separate the HSMS session instead
LINE_FAULTS = {"emulated": FAULTS,
               "fab": (*(f for f in FAULTS if f != "broker_restart"), "separate")}
MQTT_TOOLS = ("sputter1", "etcher1")  # Flow A's MQTT tools (cvd is not in Flow A)
FLOW_A_TOOLS = ("bonder1", "plater1", "sputter1", "etcher1", "saw1", "coater1", "mounter1")
WAFERLINE = [sys.executable, "-m", "waferline.cli"]


class Campaign:
    """One `sim up` and the runs against it."""

    def __init__(self, work: Path, time_scale: float, line: str = "emulated",
                 faults: tuple[str, ...] | None = None) -> None:
        self.work = work
        self.faults = faults or LINE_FAULTS[line]
        data = yaml.safe_load((LINE_DIR / f"{line}.yaml").read_text())
        data["time_scale"] = time_scale
        self.line = work / "line.yaml"
        self.line.write_text(yaml.safe_dump(data))
        self.eps = work / "endpoints.json"
        roles = work / "roles.yaml"  # the campaign's operator scraps stacks: a supervisor, to the
        roles.write_text(yaml.safe_dump({"users": {getpass.getuser(): "supervisor"}}))  # controllers
        self.env = {**os.environ, "WAFERLINE_RUNS_DIR": str(work / "runs"), ROLES_ENV: str(roles)}
        self.sim: subprocess.Popen[str] | None = None
        self.tool_uids = {s.uid for s in expand(load_flow("flow-a"), 2) if s.kind}

    def _spawn_sim(self) -> subprocess.Popen[str]:
        return subprocess.Popen([*WAFERLINE, "sim", "up", "--line", str(self.line), "--endpoints-file",
                                 str(self.eps), "--run-dir", str(self.work / "sim")],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=self.env)

    async def __aenter__(self) -> Campaign:
        self.sim = self._spawn_sim()
        async with asyncio.timeout(30):
            while not self.eps.exists():
                assert self.sim.poll() is None, self.sim.stderr.read() if self.sim.stderr else ""
                await asyncio.sleep(0.05)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.sim is not None and self.sim.poll() is None:
            self.sim.send_signal(signal.SIGTERM)
            await asyncio.to_thread(self.sim.wait, 20)

    async def one(self, index: int, seed: int) -> RunAudit:
        """Run `index` of the campaign: the first len(FAULTS) runs take each fault once, then at random."""
        rng = random.Random(seed)
        fault = self.faults[index] if index < len(self.faults) else rng.choice(self.faults)
        tool = rng.choice(MQTT_TOOLS if fault == "broker_restart" else FLOW_A_TOOLS)
        op = Operator(self, rng, fault, tool, seed)
        before = await op.ledger_lengths()
        run = await op.drive()
        ledger = await op.sim({"op": "jobs"})
        jobs = new_ledger_entries(before, ledger["ledger"])
        if op.journal is not None:
            from sequencer.run.journal import read_events

            audit(run, read_events(op.journal), jobs, self.tool_uids)
        run.violations += [v for t, vs in ledger["violations"].items()
                           for v in vs[op.violations_before.get(t, 0):]]
        run.raced += [v for t, vs in ledger["raced"].items() for v in vs[op.raced_before.get(t, 0):]]
        run.safety_mid_job = fault in ("door_open", "emo") and any(
            t == tool and o == "ABORTED" for t, o in jobs.values())
        return run


def summarize(runs: list[RunAudit]) -> dict[str, Any]:
    safety = [r for r in runs if r.safety_mid_job]
    return {
        "runs": len(runs),
        "outcomes": dict(Counter(r.outcome for r in runs)),
        "faults": dict(Counter(r.fault for r in runs)),
        "doubled": sum(len(r.doubled) for r in runs),
        "lost": sum(len(r.lost) for r in runs),
        "violations": sum(len(r.violations) for r in runs),
        "raced_starts_refused_by_the_tool": sum(len(r.raced) for r in runs),
        "tracebacks": sum(r.tracebacks for r in runs),
        "safety_mid_job": len(safety),
        "safety_mid_job_not_aborted": sum(r.outcome != "ABORTED" for r in safety),
        "scrapped": dict(Counter(why.split(":")[0] for r in runs for why in r.scrapped)),
        "scrapped_over_completed_step": sum(r.scrapped_completed for r in runs),
        "problems": [asdict(r) for r in runs if r.doubled or r.lost or r.violations or r.tracebacks
                     or r.scrapped_completed or (r.safety_mid_job and r.outcome != "ABORTED")],
    }


async def run_campaign(runs: int, seed: int = 1, time_scale: float = 20000.0,
                       work: Path | None = None, line: str = "emulated",
                       faults: tuple[str, ...] | None = None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="waferline-campaign-") as tmp:
        async with Campaign(work or Path(tmp), time_scale, line, faults) as campaign:
            audits = []
            for i in range(runs):
                audits.append(await campaign.one(i, seed * 100000 + i))
                a = audits[-1]
                print(f"run {i + 1}/{runs}: {a.fault} on {a.tool}: {a.outcome} {'; '.join(a.notes)}",
                      file=sys.stderr, flush=True)
    return summarize(audits)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--time-scale", type=float, default=20000.0)
    ap.add_argument("--line", choices=sorted(LINE_FAULTS), default="emulated",
                    help="emulated: the default line; fab: every tool GEM over HSMS")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures as JSON")
    args = ap.parse_args()
    figures = asyncio.run(run_campaign(args.runs, args.seed, args.time_scale, line=args.line))
    text = json.dumps({k: v for k, v in figures.items() if k != "problems"}, indent=2)
    print(text)
    for problem in figures["problems"]:
        print("PROBLEM", json.dumps(problem))
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
