"""A run from start to finish: a lot of one or more stacks through a flow on a line.

`start_run` checks the flow (claims and ranges) before touching a tool, opens the journal and the
run's control socket, connects the drivers of the kinds the flow needs (every tool of those kinds: the
pools) and hands over to the engine. At the end each stack's traveler is checked against the claims and
filed with the summary in the run directory. `resume_run` (resume.py) rebuilds a run from its journal.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from drivers.errors import ConfigError, ToolConnectionError
from drivers.factory import make_tool
from drivers.line import LineConfig
from drivers.tool import Tool
from sequencer.process.check import check_flow
from sequencer.process.claims import ClaimCheck, check_claims
from sequencer.process.flow import Flow, Step, expand, load_flow
from sequencer.process.traveler import Stack, new_stack
from sequencer.run import events as ev_
from sequencer.run.control import RunControl, RunState
from sequencer.run.dispatcher import RULES, DispatchRule
from sequencer.run.engine import Engine, Observer, pools_of
from sequencer.run.holdpolicy import HoldPolicy
from sequencer.run.journal import Journal
from sequencer.run.remote import RemoteControlServer
from sequencer.run.rundir import CONTROL_SOCK, JOURNAL, PID, SUMMARY, TRAVELER, create_run_dir

MAX_STACKS = 500
log = logging.getLogger(__name__)


@dataclass
class RunOutcome:
    run_id: str
    directory: Path
    state: RunState
    held_reason: str | None
    stacks: list[Stack]
    claims_by_stack: dict[str, list[ClaimCheck]]
    scrapped: set[str] = field(default_factory=set)  # stacks an operator took out of the lot

    @property
    def stack(self) -> Stack:
        """The first stack (a one-stack run's only one)."""
        return self.stacks[0]

    @property
    def claims(self) -> list[ClaimCheck]:
        return self.claims_by_stack.get(self.stack.stack_id, [])

    @property
    def claims_ok(self) -> bool:
        """Every stack still in the lot (at least one) has its claims checked and holding."""
        kept = [s.stack_id for s in self.stacks if s.stack_id not in self.scrapped]
        checks = [self.claims_by_stack.get(stack_id, []) for stack_id in kept]
        return bool(checks) and all(c and all(x.ok for x in c) for c in checks)


AfterRun = Callable[[Path], Awaitable[None]]


def refuse_bad_flow(flow: Flow, wafers: int, steps: list[Step] | None = None) -> None:
    report = check_flow(flow, wafers, steps)
    if not report.ok:
        lines = [f"step {v.step}: {v.rule}: {v.message}" for v in report.violations]
        lines += [f"claim {c.claim} ({c.title}): {c.detail}" for c in report.claims if not c.ok]
        raise ConfigError(f"flow {flow.name} with {wafers} wafers is refused:\n  " + "\n  ".join(lines))


def stack_ids(run_id: str, count: int) -> list[str]:
    return [f"{run_id}-S{i}" for i in range(1, count + 1)]


@asynccontextmanager
async def connected(line: LineConfig, kinds: set[str]) -> AsyncIterator[dict[str, Tool[Any, Any]]]:
    """Drivers for every tool of the line of the given kinds (the pools), connected; closed after. A tool
    that cannot be connected now is not a reason to refuse the run: its driver connects on first use,
    and until then its steps hold with the reason, as for a link lost mid-run."""
    tools = {cfg.name: make_tool(cfg, line) for cfg in line.tools if cfg.kind in kinds}
    missing = kinds - {t.kind for t in tools.values()}
    if missing:
        raise ConfigError(f"line {line.name} has no tool of kind(s) {sorted(missing)} the flow needs")
    try:
        for tool in tools.values():
            try:
                await tool.connect()
            except ToolConnectionError as exc:  # a GEM tool that does not answer S1F13, a tool still off:
                log.warning("%s; its first step will hold until it answers", exc)  # the engine holds
        yield tools
    finally:
        for tool in tools.values():
            with contextlib.suppress(Exception):
                await tool.close()


def line_pools(line: LineConfig, steps: list[Step]) -> dict[str, list[str]]:
    kinds = {s.kind for s in steps if s.kind}
    return {k: [t.name for t in line.tools if t.kind == k] for k in sorted(kinds)}


async def drive(directory: Path, journal: Journal, control: RunControl, line: LineConfig,
                steps: list[Step], who: str, engine_args: dict[str, Any]) -> RunOutcome:
    """Serve run control, connect the pools, execute the lot, file travelers, claims and the summary."""
    on_control = engine_args.pop("on_control", None)
    after: AfterRun | None = engine_args.pop("after", None)
    hold_policy: HoldPolicy = engine_args.pop("hold_policy", None) or HoldPolicy()
    if on_control is not None:
        on_control(control)  # e.g. the CLI's Ctrl-C handler asks this control for a stop
    (directory / PID).write_text(str(os.getpid()))
    server = RemoteControlServer(control, directory / CONTROL_SOCK)
    await server.start()
    try:
        async with connected(line, {s.kind for s in steps if s.kind}) as tools:
            engine = Engine(run_id=journal.run_id, steps=steps, tools=tools, journal=journal, control=control,
                            **engine_args)
            server.on_bypass, server.on_scrap = engine.grant_bypass, engine.scrap
            server.on_tool, server.tools = engine.tool_command, list(tools)
            hold_policy.attach(control, engine.leave_held)
            if control.state is RunState.IDLE:
                control.command("start", who=who, why="run started")
            state = await engine.execute()
        stacks = engine.stacks
        kept = [s for s in stacks if s.stack_id not in engine.lot.scrapped]
        claims = {s.stack_id: check_claims(s) for s in kept} if state is RunState.COMPLETING else {}
        travelers = [json.loads(s.model_dump_json()) for s in stacks]
        filed_claims = {sid: [c.__dict__ for c in cs] for sid, cs in claims.items()}
        journal.append(ev_.TravelerFiled(stacks=travelers, claims=filed_claims))
        filed = {"run_id": journal.run_id, "stacks": travelers}
        (directory / TRAVELER).write_text(json.dumps(filed, indent=2))
        if state is RunState.COMPLETING:
            state = control.state_complete(why="travelers and claims check filed")
        outcome = RunOutcome(journal.run_id, directory, state, control.held_reason, stacks, claims,
                             set(engine.lot.scrapped))
        head_seq, head = journal.head  # `waferline verify` checks the journal still holds it
        filed_summary = {**summary(outcome, steps), "journal_head": {"seq": head_seq, "hash": head}}
        (directory / SUMMARY).write_text(json.dumps(filed_summary, indent=2))
        if after is not None:
            await after(directory)  # e.g. the CLI files the report (the run layer never imports reports)
        return outcome
    finally:
        await hold_policy.close()
        await server.stop()
        (directory / PID).unlink(missing_ok=True)


def _claims_json(checks: list[ClaimCheck]) -> list[dict[str, Any]]:
    return [{"claim": c.claim, "title": c.title, "ok": c.ok, "detail": c.detail} for c in checks]


def summary(outcome: RunOutcome, steps: list[Step]) -> dict[str, Any]:
    first = outcome.stack
    return {
        "run_id": outcome.run_id, "state": outcome.state.value, "held_reason": outcome.held_reason,
        "steps": len(steps), "stack_id": first.stack_id, "flow": first.flow,
        "wafers": [{"index": w.index, "state": str(w.state)} for w in first.wafers],
        "claims": _claims_json(outcome.claims), "claims_ok": outcome.claims_ok,
        "stacks": [{"stack_id": s.stack_id,
                    "wafers": [{"index": w.index, "state": str(w.state)} for w in s.wafers],
                    "scrapped": s.stack_id in outcome.scrapped,
                    "claims": _claims_json(outcome.claims_by_stack.get(s.stack_id, [])),
                    "claims_ok": bool(outcome.claims_by_stack.get(s.stack_id))
                    and all(c.ok for c in outcome.claims_by_stack[s.stack_id])}
                   for s in outcome.stacks],
    }


async def start_run(
    flow_name: str, line: LineConfig, *, wafers: int | None = None, stacks: int = 1, who: str = "operator",
    observer: Observer | None = None, sync: Literal["normal", "full"] = "normal",
    on_control: Callable[[RunControl], None] | None = None, rule: DispatchRule = "most_steps_left",
    hold_policy: HoldPolicy | None = None, after: AfterRun | None = None,
) -> RunOutcome:
    """Run a lot of `stacks` stacks of `wafers` wafers through the flow on the line's pools; `after`
    runs on the run directory once the summary is filed (the CLI writes the report there)."""
    if not 1 <= stacks <= MAX_STACKS:
        raise ConfigError(f"stacks: {stacks} is outside 1-{MAX_STACKS}")
    if rule not in RULES:
        raise ConfigError(f"dispatch rule: {rule!r} is not one of {list(RULES)}")
    flow = load_flow(flow_name)  # once, and expanded once: the check judges the very steps that run
    n = wafers or flow.wafers.default
    steps = expand(flow, n)
    refuse_bad_flow(flow, n, steps)
    if observer is not None:
        observer("planned", None, {"steps": len(steps) * stacks})
    directory = create_run_dir()
    run_id = directory.name
    lot = [new_stack(flow, n, sid) for sid in stack_ids(run_id, stacks)]
    with Journal(directory / JOURNAL, run_id, sync=sync) as journal:
        journal.append(ev_.RunCreated(flow=flow.name, wafers=n, line=line.name, time_scale=line.time_scale,
                                      stack_id=lot[0].stack_id, stacks=[s.stack_id for s in lot],
                                      pools=line_pools(line, steps), rule=rule, steps=[s.uid for s in steps]))
        control = RunControl(journal)
        return await drive(directory, journal, control, line, steps, who,
                           {"stacks": lot, "observer": observer, "on_control": on_control, "rule": rule,
                            "hold_policy": hold_policy, "after": after})


__all__ = ["AfterRun", "RunOutcome", "connected", "drive", "pools_of", "refuse_bad_flow", "start_run",
           "summary"]
