"""The campaign's operator for one run: inject the run's fault, and act on every hold as a person would.

On a hold: clear the injected fault, close doors and EMO, reset a tool's alarm and abort a stuck or
paused job through the run (`tool` commands on its control socket, the path `waferline tools` uses);
then scrap the stack if one of its wafers is ABORTED, or UNKNOWN after a restart with the fault gone;
otherwise restart. kill -9 faults are followed by `waferline resume`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import signal
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmarks._campaign_audit import RunAudit
from drivers.errors import WaferlineError
from drivers.factory import make_tool
from drivers.line import Endpoints, apply_endpoints, load_line
from sequencer.process.flow import expand, load_flow
from sequencer.process.traveler import E90State, new_stack
from sequencer.run.journal import JournalError, read_events
from sequencer.run.remote import RemoteControlError, send_command
from sequencer.run.resume import replay_journal
from sim_tools.control import send

if TYPE_CHECKING:
    from benchmarks.campaign import Campaign

WAFERLINE = [sys.executable, "-m", "waferline.cli"]
WHO = "campaign operator"
RUN_LIMIT_S = 180.0
MAX_INTERVENTIONS = 8
PRE_ARMED = {"alarm": "alarm", "door_open": "door_open", "drift": "drift", "stuck_busy": "stuck_busy",
             "off_target": "off_target", "kill9_held": "alarm"}
LINK = {"silence": 1.0, "garble": 0.5, "delay": 1.0, "link_drop": 0.5, "separate": 0.5}


class Operator:
    def __init__(self, campaign: Campaign, rng: random.Random, fault: str, tool: str, seed: int) -> None:
        self.c, self.rng, self.fault, self.tool, self.seed = campaign, rng, fault, tool, seed
        self.journal: Path | None = None
        self.violations_before: dict[str, int] = {}
        self.raced_before: dict[str, int] = {}
        self.output: list[str] = []
        self.proc: subprocess.Popen[str] | None = None
        self.unknown_restarts = 0

    async def sim(self, request: dict[str, Any]) -> dict[str, Any]:
        control = Path(json.loads(self.c.eps.read_text())["control"])
        reply = await send(control, request)
        if not reply.get("ok"):
            raise RuntimeError(f"sim control {request}: {reply.get('error')}")
        return reply

    async def ledger_lengths(self) -> dict[str, int]:
        jobs = await self.sim({"op": "jobs"})
        self.violations_before = {t: len(v) for t, v in jobs["violations"].items()}
        self.raced_before = {t: len(v) for t, v in jobs["raced"].items()}
        return {t: len(v) for t, v in jobs["ledger"].items()}

    # --- the run ---------------------------------------------------------------------------------
    async def drive(self) -> RunAudit:
        run = RunAudit(seed=self.seed, fault=self.fault, tool=self.tool, outcome="?")
        known = set(self._runs())
        await self._arm()
        self._start(["run", "flow-a", "--wafers", "2"])
        injector = asyncio.create_task(self._inject(known))
        try:
            async with asyncio.timeout(RUN_LIMIT_S):
                run.outcome = await self._operate(known, run)
        except TimeoutError:
            run.outcome = "TIMEOUT"
            run.notes.append("run limit reached")
            self._kill()
        finally:
            if self.fault == "broker_restart":  # never leave the broker down between runs
                with contextlib.suppress(TimeoutError, Exception):
                    await asyncio.wait_for(asyncio.shield(injector), 30)
            injector.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await injector
            await self.end_of_run(run)
        run.tracebacks = sum(o.count("Traceback (most recent call last)") for o in self.output)
        return run

    def _start(self, verb: list[str]) -> None:
        """The controller as a process (so it can be killed), its output in a file (a pipe could fill)."""
        self._log = self.c.work / f"controller-{self.seed}-{len(self.output)}.log"
        with self._log.open("w") as out:
            self.proc = subprocess.Popen([*WAFERLINE, *verb, "--line", str(self.c.line), "--endpoints",
                                          str(self.c.eps)], stdout=out, stderr=subprocess.STDOUT, text=True,
                                         env=self.c.env)

    def _kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._collect()

    def _collect(self) -> None:
        with contextlib.suppress(OSError):
            self.output.append(self._log.read_text())
            self._log.unlink()

    def _runs(self) -> list[Path]:
        root = self.c.work / "runs"
        return sorted(root.iterdir()) if root.exists() else []

    def _state(self) -> tuple[str | None, list[Any]]:
        if self.journal is None:
            return None, []
        try:
            events = read_events(self.journal)
        except JournalError:
            return None, []
        states = [e.data["to"] for e in events if e.kind == "state"]
        return (states[-1] if states else None), events

    async def _operate(self, known: set[Path], run: RunAudit) -> str:
        interventions = 0
        while True:
            await asyncio.sleep(0.05)
            if self.journal is None:
                fresh = [p for p in self._runs() if p not in known]
                self.journal = fresh[0] / "journal.sqlite" if fresh else None
            state, events = self._state()
            assert self.proc is not None
            if self.proc.poll() is not None:
                self._collect()
                if self.fault.startswith("kill9") and self.proc.returncode == -signal.SIGKILL:
                    self._start(["resume", self.journal.parent.name if self.journal else "?"])
                    continue
                return state or f"exit {self.proc.returncode}"
            if state == "HELD" and await self._answers():
                interventions += 1
                if self.fault == "kill9_held" and interventions == 1:
                    self.proc.kill()  # killed while HELD: the resume comes up HELD
                    self.proc.wait()
                    continue
                await self._on_hold(events, run, interventions > MAX_INTERVENTIONS)

    async def _answers(self) -> bool:
        """The run's sequencer serves its control socket (a resumed one may not be up yet)."""
        if self.journal is None:
            return False
        try:
            await send_command(self.journal.parent, "status", WHO, timeout=5)
        except RemoteControlError:
            return False
        return True

    # --- faults ----------------------------------------------------------------------------------
    async def _arm(self) -> None:
        """Process faults wait on the tool for its next job."""
        kind = PRE_ARMED.get(self.fault)
        if kind is None:
            return
        spec: dict[str, Any] = {"kind": kind, "at_fraction": round(self.rng.uniform(0.2, 0.8), 3)}
        if kind in ("drift", "off_target"):
            spec["magnitude"] = 0.3
        await self.sim({"op": "fault", "tool": self.tool, "fault": spec})

    async def _inject(self, known: set[Path]) -> None:
        """Timed faults: some while the run goes on, whether or not a job is in the chamber then."""
        await asyncio.sleep(self.rng.uniform(0.3, 2.5))
        if self.fault in LINK:
            spec: dict[str, Any] = {"kind": self.fault, "probability": LINK[self.fault]}
            if self.fault == "delay":
                spec["delay_s"] = round(self.rng.uniform(0.3, 3.0), 2)
            await self.sim({"op": "fault", "tool": self.tool, "fault": spec})
            await asyncio.sleep(self.rng.uniform(0.5, 1.5))
            await self.sim({"op": "clear", "tool": self.tool, "kind": self.fault})
        elif self.fault == "emo":
            await self.sim({"op": "interlock", "tool": self.tool, "name": "emo_ok", "healthy": False})
        elif self.fault == "power_cycle":
            await self.sim({"op": "power_cycle", "tool": self.tool})
        elif self.fault == "broker_restart":
            await self.sim({"op": "broker_restart", "down_s": round(self.rng.uniform(0.3, 1.5), 2)})
        elif self.fault == "kill9":
            await self._kill_mid_step()

    async def _kill_mid_step(self) -> None:
        done_before = self.rng.randint(1, 12)
        while True:
            await asyncio.sleep(0.01)
            _state, events = self._state()
            done = {e.data["uid"] for e in events if e.kind == "step_completed"}
            open_ = [e for e in events if e.kind == "step_started" and e.data["uid"] not in done]
            if len(done) >= done_before and open_ and self.proc is not None and self.proc.poll() is None:
                self.proc.send_signal(signal.SIGKILL)
                return

    async def _heal(self) -> None:
        """The fault's cause removed: faults cleared, doors closed, EMO released."""
        await self.sim({"op": "clear", "tool": self.tool})
        for name in ("door_closed", "emo_ok"):
            await self.sim({"op": "interlock", "tool": self.tool, "name": name, "healthy": True})

    async def end_of_run(self, run: RunAudit) -> None:
        """After the run: the cause removed and every latched alarm reset at the tools (no run holds
        them now, so the operator's reset goes to each tool directly), ready for the next run. A tool
        still unreachable (a broker coming back) is tried again before the next run starts."""
        await self._heal()
        line = apply_endpoints(load_line(str(self.c.line)), Endpoints.read(self.c.eps))
        for cfg in line.tools:
            for attempt in range(5):
                try:
                    async with make_tool(cfg, line) as tool:
                        if (await tool.status()).alarm is not None:
                            await tool.reset()
                    break
                except WaferlineError as exc:
                    if attempt == 4:
                        run.notes.append(f"end of run: {cfg.name} not reset: {exc}")
                    await asyncio.sleep(1.0)

    # --- a hold ----------------------------------------------------------------------------------
    async def _tool(self, name: str, op: str) -> dict[str, Any]:
        assert self.journal is not None
        reply = await send_command(self.journal.parent, "tool", WHO, f"campaign {op}", timeout=20,
                                   tool={"name": name, "op": op})
        return reply

    async def _clear_tools(self) -> None:
        """Every tool of the run, through the run: a stuck or paused job is ended, an alarm reset."""
        assert self.journal is not None
        names = (await send_command(self.journal.parent, "tools", WHO, timeout=20)).get("tools") or []
        for name in names:
            status = (await self._tool(name, "status")).get("tool_status") or {}
            stuck = name == self.tool and self.fault in ("stuck_busy", "alarm", "kill9_held")
            if status.get("job_outcome") == "RUNNING" and (stuck or status.get("alarm")):
                await self._tool(name, "abort")  # the operator ends a stuck or paused job at the tool
            if status.get("alarm"):
                await self._tool(name, "reset")

    def _wafers(self, events: list[Any]) -> list[E90State]:
        flow = load_flow("flow-a")
        stack = new_stack(flow, 2, str(events[0].data["stack_id"]))
        replay_journal(events, expand(flow, 2), [stack])
        return [w.state for w in stack.wafers]

    async def _on_hold(self, events: list[Any], run: RunAudit, give_up: bool) -> None:
        assert self.journal is not None
        directory = self.journal.parent
        try:
            if give_up:
                run.notes.append("operator gave up: abort")
                await send_command(directory, "abort", WHO, "too many holds", timeout=20)
                return
            await self._heal()
            await self._clear_tools()
            wafers = self._wafers(events)
            unknown = E90State.UNKNOWN in wafers
            if E90State.ABORTED in wafers or (unknown and self.unknown_restarts >= 2):
                bad = "ABORTED" if E90State.ABORTED in wafers else "UNKNOWN"
                reply = await send_command(directory, "scrap", WHO, f"{bad}: wafer {bad} after {self.fault}",
                                           stack="S1", timeout=20)
                if not reply.get("ok"):
                    run.notes.append(f"scrap refused: {reply.get('error')}")
            elif unknown:
                self.unknown_restarts += 1
            await send_command(directory, "restart", WHO, f"operator cleared {self.fault}", timeout=20)
        except RemoteControlError as exc:  # the controller went away meanwhile (killed, finished)
            run.notes.append(f"hold handling: {exc}")
