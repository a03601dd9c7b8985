"""Resume a run from its journal alone, after a crash, a kill -9 or an operator's stop of the controller.

Completed steps are re-applied to fresh travelers from their journaled results (never re-run);
started-but-unfinished jobs become in-doubt and the engine asks their tools what happened.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from drivers.errors import ConfigError
from drivers.line import LineConfig
from sequencer.process.flow import Step, expand, load_flow
from sequencer.process.traveler import E90State, Stack, apply_step, new_stack, set_state
from sequencer.run import events as ev_
from sequencer.run.control import RunControl, RunState
from sequencer.run.engine import InDoubt, Key, Observer
from sequencer.run.holdpolicy import HoldPolicy
from sequencer.run.interlocks import Bypass
from sequencer.run.journal import Event, Journal, require_intact
from sequencer.run.recovery import wafer_state
from sequencer.run.run import AfterRun, RunOutcome, drive
from sequencer.run.rundir import JOURNAL, run_dir
from sequencer.run.scrap import mark_scrapped
from sequencer.run.state import rebuild


def replay_journal(
    events: list[Event], steps: list[Step], stacks: list[Stack]
) -> tuple[set[Key], dict[Key, InDoubt]]:
    """Re-apply completed steps from their journaled results; collect the in-doubt jobs."""
    by_uid = {s.uid: s for s in steps}
    by_id = {s.stack_id: s for s in stacks}
    first = stacks[0].stack_id
    completed: set[Key] = set()
    in_doubt: dict[Key, InDoubt] = {}
    for ev in events:
        b = ev.body
        if isinstance(b, ev_.StackScrapped):
            mark_scrapped(by_id[b.stack])
        if not isinstance(b, ev_.StepBody):
            continue
        uid, stack = b.uid, by_id[b.stack or first]
        key = (stack.stack_id, uid)
        if isinstance(b, ev_.StepStarted):
            in_doubt[key] = InDoubt(b.tool or "-", b.job_id or 0, b.tool_job_before or 0, b.tool_boot)
        elif isinstance(b, ev_.StepRecovered):  # the wafer's state from the tool's answer, as the run set it
            set_state(stack, by_uid[uid].wafer, wafer_state(stack, by_uid[uid], b.outcome))
            if b.outcome == "NOT_STARTED":
                in_doubt.pop(key, None)
        elif isinstance(b, ev_.StepCompleted):
            in_doubt.pop(key, None)
            completed.add(key)
            apply_step(stack, by_uid[uid], b.result, tool=b.tool or "-", at=ev.ts)
        elif isinstance(b, ev_.StepFailed):
            in_doubt.pop(key, None)
            if b.started is not False:
                set_state(stack, by_uid[uid].wafer, E90State(b.wafer_state or "ABORTED"))
        elif isinstance(b, ev_.StepUnknown):
            set_state(stack, by_uid[uid].wafer, E90State.UNKNOWN)
    return completed, in_doubt


async def resume_run(run_id: str, line: LineConfig, *, who: str = "operator",
                     observer: Observer | None = None,
                     on_control: Callable[[RunControl], None] | None = None,
                     note: str | None = None, hold_policy: HoldPolicy | None = None,
                     after: AfterRun | None = None) -> RunOutcome:
    require_intact(run_dir(run_id) / JOURNAL)  # never resume from a rewritten record
    journal = Journal.open_existing(run_dir(run_id) / JOURNAL)
    with journal:
        events = journal.events()
        snap = rebuild(events)
        flow = load_flow(snap.flow)
        steps = expand(flow, snap.wafers)
        stacks = [new_stack(flow, snap.wafers, sid) for sid in snap.stacks or [snap.stack_id]]
        completed, in_doubt = replay_journal(events, steps, stacks)
        if observer is not None:
            observer("planned", None, {"steps": len(steps) * len(stacks), "done": len(completed)})
        if snap.state in (RunState.COMPLETE, RunState.ABORTED, RunState.STOPPED):
            raise ConfigError(f"run {run_id} already ended {snap.state}; nothing to resume")
        doubt = ", ".join(f"{s}/{u}" if len(stacks) > 1 else u for s, u in in_doubt) or "none"
        journal.append(ev_.Note(text=f"resumed by {who}: {len(completed)} step(s) done, "
                                     f"{len(in_doubt)} in doubt ({doubt})" + (f"; {note}" if note else "")))
        control = RunControl(journal, snap.state, held_reason=snap.held_reason)
        bypasses = [b for b in (Bypass.model_validate(r.model_dump(exclude={"seq", "ts"}))
                                for r in snap.bypasses) if b.active()]
        engine_args: dict[str, Any] = {
            "stacks": stacks, "observer": observer, "completed": completed, "in_doubt": in_doubt,
            "on_control": on_control, "hold_policy": hold_policy, "after": after,
            "bypasses": bypasses, "rule": snap.rule, "scrapped": set(snap.scrapped)}
        return await drive(run_dir(run_id), journal, control, line, steps, who, engine_args)
