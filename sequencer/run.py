"""A run from start to finish, or from its journal after a crash.

`start_run` checks the flow (claims and ranges) before touching a tool, opens the journal and the
run's control socket, connects the drivers of the kinds the flow needs and hands over to the engine.
`resume_run` rebuilds everything from the journal alone: completed steps are re-applied to a fresh
traveler from their journaled results (never re-run), started-but-unfinished steps become in-doubt and
the engine asks their tools what happened.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from drivers.errors import ConfigError
from drivers.factory import make_tool
from drivers.line import LineConfig
from drivers.tool import Tool
from sequencer.check import check_flow
from sequencer.claims import ClaimCheck, check_claims
from sequencer.control import RunControl, RunState
from sequencer.engine import Engine, InDoubt, Observer
from sequencer.flow import Flow, expand, load_flow
from sequencer.interlocks import Bypass
from sequencer.journal import Journal
from sequencer.remote import RemoteControlServer
from sequencer.rundir import CONTROL_SOCK, JOURNAL, PID, SUMMARY, TRAVELER, create_run_dir, run_dir
from sequencer.state import rebuild
from sequencer.traveler import E90State, Stack, apply_step, new_stack, set_state


@dataclass
class RunOutcome:
    run_id: str
    directory: Path
    state: RunState
    held_reason: str | None
    stack: Stack
    claims: list[ClaimCheck]

    @property
    def claims_ok(self) -> bool:
        return bool(self.claims) and all(c.ok for c in self.claims)


def refuse_bad_flow(flow: Flow, wafers: int) -> None:
    report = check_flow(flow, wafers)
    if not report.ok:
        lines = [f"step {v.step}: {v.rule}: {v.message}" for v in report.violations]
        lines += [f"claim {c.claim} ({c.title}): {c.detail}" for c in report.claims if not c.ok]
        raise ConfigError(f"flow {flow.name} with {wafers} wafers is refused:\n  " + "\n  ".join(lines))


@asynccontextmanager
async def _connected(line: LineConfig, kinds: set[str]) -> AsyncIterator[dict[str, Tool[Any, Any]]]:
    tools = {cfg.name: make_tool(cfg, line) for cfg in line.tools if cfg.kind in kinds}
    missing = kinds - {t.kind for t in tools.values()}
    if missing:
        raise ConfigError(f"line {line.name} has no tool of kind(s) {sorted(missing)} the flow needs")
    try:
        for tool in tools.values():
            await tool.connect()
        yield tools
    finally:
        for tool in tools.values():
            with contextlib.suppress(Exception):
                await tool.close()


async def _drive(directory: Path, journal: Journal, control: RunControl, line: LineConfig,
                 steps: list[Any], who: str, engine_args: dict[str, Any]) -> RunOutcome:
    on_control = engine_args.pop("on_control", None)
    if on_control is not None:
        on_control(control)  # e.g. the CLI's Ctrl-C handler asks this control for a stop
    (directory / PID).write_text(str(os.getpid()))
    server = RemoteControlServer(control, directory / CONTROL_SOCK)
    await server.start()
    try:
        async with _connected(line, {s.kind for s in steps if s.kind}) as tools:
            engine = Engine(run_id=journal.run_id, steps=steps, tools=tools, journal=journal, control=control,
                            **engine_args)
            server.on_bypass = engine.grant_bypass
            if control.state is RunState.IDLE:
                control.command("start", who=who, why="run started")
            state = await engine.execute()
        stack: Stack = engine.stack
        claims = check_claims(stack) if state is RunState.COMPLETING else []
        journal.append("traveler", stack=json.loads(stack.model_dump_json()),
                       claims=[c.__dict__ for c in claims])
        (directory / TRAVELER).write_text(stack.model_dump_json(indent=2))
        if state is RunState.COMPLETING:
            state = control.state_complete(why="traveler and claims check filed")
        outcome = RunOutcome(journal.run_id, directory, state, control.held_reason, stack, claims)
        (directory / SUMMARY).write_text(json.dumps(summary(outcome, steps), indent=2))
        return outcome
    finally:
        await server.stop()
        (directory / PID).unlink(missing_ok=True)


def summary(outcome: RunOutcome, steps: list[Any]) -> dict[str, Any]:
    return {
        "run_id": outcome.run_id, "state": outcome.state.value, "held_reason": outcome.held_reason,
        "steps": len(steps), "stack_id": outcome.stack.stack_id, "flow": outcome.stack.flow,
        "wafers": [{"index": w.index, "state": str(w.state)} for w in outcome.stack.wafers],
        "claims": [{"claim": c.claim, "title": c.title, "ok": c.ok, "detail": c.detail}
                   for c in outcome.claims],
        "claims_ok": outcome.claims_ok,
    }


async def start_run(
    flow_name: str, line: LineConfig, *, wafers: int | None = None, who: str = "operator",
    observer: Observer | None = None, sync: Literal["normal", "full"] = "normal",
    on_control: Callable[[RunControl], None] | None = None,
) -> RunOutcome:
    flow = load_flow(flow_name)
    n = wafers or flow.wafers.default
    refuse_bad_flow(flow, n)
    steps = expand(flow, n)
    directory = create_run_dir()
    run_id = directory.name
    stack = new_stack(flow, n, f"{run_id}-S1")
    with Journal(directory / JOURNAL, run_id, sync=sync) as journal:
        journal.append("run_created", flow=flow.name, wafers=n, line=line.name, time_scale=line.time_scale,
                       stack_id=stack.stack_id, steps=[s.uid for s in steps])
        control = RunControl(journal)
        return await _drive(directory, journal, control, line, steps, who,
                            {"stack": stack, "observer": observer, "on_control": on_control})


def replay_journal(
    events: list[Any], steps: list[Any], stack: Stack
) -> tuple[set[str], dict[str, InDoubt]]:
    """Re-apply completed steps from their journaled results; collect the in-doubt ones."""
    by_uid = {s.uid: s for s in steps}
    completed: set[str] = set()
    in_doubt: dict[str, InDoubt] = {}
    for ev in events:
        uid = ev.data.get("uid")
        if ev.kind == "step_started":
            in_doubt[uid] = InDoubt(ev.data["tool"], ev.data["job_id"], ev.data.get("tool_job_before", 0))
        elif ev.kind == "step_recovered" and ev.data.get("outcome") == "NOT_STARTED":
            in_doubt.pop(uid, None)
        elif ev.kind == "step_completed":
            in_doubt.pop(uid, None)
            completed.add(uid)
            apply_step(stack, by_uid[uid], ev.data.get("result"), tool=ev.data.get("tool", "-"), at=ev.ts)
        elif ev.kind == "step_failed":
            in_doubt.pop(uid, None)
            if ev.data.get("started", True):
                set_state(stack, by_uid[uid].wafer, E90State(ev.data.get("wafer_state", "ABORTED")))
        elif ev.kind == "step_unknown":
            set_state(stack, by_uid[uid].wafer, E90State.UNKNOWN)
    return completed, in_doubt


async def resume_run(run_id: str, line: LineConfig, *, who: str = "operator",
                     observer: Observer | None = None,
                     on_control: Callable[[RunControl], None] | None = None) -> RunOutcome:
    directory = run_dir(run_id)
    journal = Journal.open_existing(directory / JOURNAL)
    with journal:
        events = journal.events()
        snap = rebuild(events)
        flow = load_flow(snap.flow)
        steps = expand(flow, snap.wafers)
        stack = new_stack(flow, snap.wafers, snap.stack_id)
        completed, in_doubt = replay_journal(events, steps, stack)
        if snap.state in (RunState.COMPLETE, RunState.ABORTED, RunState.STOPPED):
            raise ConfigError(f"run {run_id} already ended {snap.state}; nothing to resume")
        journal.append("note", text=f"resumed by {who}: {len(completed)} step(s) done, "
                                    f"{len(in_doubt)} in doubt ({', '.join(in_doubt) or 'none'})")
        control = RunControl(journal, snap.state, held_reason=snap.held_reason)
        bypasses = [b for b in (Bypass(**{k: e.data[k] for k in ("interlock", "role", "reason", "who",
                                                                  "expires_at")})
                                for e in events if e.kind == "bypass") if b.active()]
        return await _drive(directory, journal, control, line, steps, who,
                            {"stack": stack, "observer": observer, "completed": completed,
                             "in_doubt": in_doubt, "on_control": on_control, "bypasses": bypasses})
