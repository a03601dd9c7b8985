"""A lot of stacks over pools of tools: concurrency, exactly-once, run control across stacks, resume.

Runs on configs/lines/pools.yaml (two coaters, platers, etchers, sputterers) over the real protocols.
"""

from __future__ import annotations

import asyncio
import getpass
import itertools
import json
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path

import pytest

from drivers.line import LineConfig, apply_endpoints, load_line
from sequencer.reports.accounting import account
from sequencer.reports.write import file_report
from sequencer.run.control import RunState
from sequencer.run.journal import Event, read_events
from sequencer.run.remote import send_command
from sequencer.run.run import RunOutcome, start_run
from sequencer.run.rundir import JOURNAL, SUMMARY, TRAVELER
from sequencer.run.state import rebuild
from sim_tools.faults import FaultKind, FaultSpec
from sim_tools.line import EmulatedLine


@pytest.fixture(scope="module")
async def pools() -> AsyncIterator[tuple[LineConfig, EmulatedLine]]:
    config = load_line("pools").model_copy(update={"time_scale": 100000.0})
    async with EmulatedLine(config) as emulated:
        assert emulated.endpoints is not None
        yield apply_endpoints(config, emulated.endpoints), emulated


def events(outcome: RunOutcome) -> list[Event]:
    return read_events(outcome.directory / JOURNAL)


def t(ev: Event) -> float:
    return datetime.fromisoformat(ev.ts).timestamp()


def jobs_by_tool(evs: list[Event]) -> dict[str, list[tuple[float, float, str]]]:
    """tool -> [(start, end, stack/uid)] from step_started to the job's end event."""
    started: dict[tuple[str, str], Event] = {}
    out: dict[str, list[tuple[float, float, str]]] = defaultdict(list)
    for ev in evs:
        key = (ev.data.get("stack", ""), ev.data.get("uid", ""))
        if ev.kind == "step_started":
            started[key] = ev
        elif ev.kind in ("step_completed", "step_failed", "step_unknown") and key in started:
            s = started.pop(key)
            out[s.data["tool"]].append((t(s), t(ev), f"{key[0]}/{key[1]}"))
    return out


async def test_a_lot_of_four_stacks_completes_on_the_pools_with_no_tool_doing_two_jobs_at_once(
    pools: tuple[LineConfig, EmulatedLine], runs: Path
) -> None:
    config, _ = pools
    outcome = await start_run("flow-a", config, wafers=2, stacks=4, after=file_report)
    assert outcome.state is RunState.COMPLETE and outcome.claims_ok
    assert [s.stack_id for s in outcome.stacks] == [f"{outcome.run_id}-S{i}" for i in range(1, 5)]
    evs = events(outcome)
    created = evs[0].data
    assert created["stacks"] == [s.stack_id for s in outcome.stacks]
    assert created["pools"]["coater"] == ["coater1", "coater2"]
    done = [(e.data["stack"], e.data["uid"]) for e in evs if e.kind == "step_completed"]
    assert len(done) == len(set(done)) == 4 * len(created["steps"])  # every step of every stack, once
    by_tool = jobs_by_tool(evs)
    for tool, jobs in by_tool.items():
        jobs.sort()
        for (_s0, e0, a), (s1, _e1, b) in itertools.pairwise(jobs):
            assert s1 >= e0, f"{tool} ran {b} before {a} ended"
    for kind in ("coater", "plater", "etcher", "sputterer"):
        assert len(created["pools"][kind]) == 2
        assert all(by_tool[name] for name in created["pools"][kind]), f"every {kind} of the pool gets work"
    stacks_at_once = max(len({j[2].split("/")[0] for tool in by_tool.values() for j in tool
                              if j[0] <= moment < j[1]}) for moment in (j[0] for v in by_tool.values()
                                                                        for j in v))
    assert stacks_at_once >= 3  # the stacks really flow concurrently
    filed = json.loads((outcome.directory / TRAVELER).read_text())
    assert [s["stack_id"] for s in filed["stacks"]] == created["stacks"]
    summary = json.loads((outcome.directory / SUMMARY).read_text())
    assert [s["claims_ok"] for s in summary["stacks"]] == [True] * 4
    snap = rebuild(outcome.directory / JOURNAL)
    assert snap.stacks == created["stacks"] and snap.state is RunState.COMPLETE
    assert all(r.status == "completed" for r in snap.steps.values())


async def _wait_state(run_dir: Path, state: str, limit: float = 30) -> list[Event]:
    async with asyncio.timeout(limit):
        while True:
            evs = read_events(run_dir / JOURNAL) if (run_dir / JOURNAL).exists() else []
            states = [e.data["to"] for e in evs if e.kind == "state"]
            if states and states[-1] == state:
                return evs
            await asyncio.sleep(0.01)


def newest_journal(runs: Path) -> list[Path]:
    return sorted(runs.glob(f"*/{JOURNAL}"))[-1:]


async def _run_dir_when(runs: Path, started: int, limit: float = 30) -> Path:
    async with asyncio.timeout(limit):
        while True:
            found = newest_journal(runs)
            if found:
                evs = read_events(found[-1])
                if sum(e.kind == "step_started" for e in evs) >= started:
                    return found[-1].parent
            await asyncio.sleep(0.005)


async def test_a_hold_from_one_stack_holds_the_lot_and_restart_finishes_every_stack(
    pools: tuple[LineConfig, EmulatedLine], runs: Path
) -> None:
    config, emulated = pools
    emulated.tools["mounter1"].set_interlock("n2_ok", False)  # nitrogen off before ball reflow
    task = asyncio.create_task(start_run("flow-a", config, wafers=2, stacks=3, after=file_report))
    run_dir = await _run_dir_when(runs, 1)
    evs = await _wait_state(run_dir, "HELD")
    held_at = max(e.seq for e in evs if e.kind == "state" and e.data["to"] == "HELD")
    assert not jobs_in_chamber(evs, held_at), "HELD only once no job is in a chamber"
    reply = await send_command(run_dir, "status", "test")
    assert "n2_supply_on" in reply["held_reason"] and "-S" in reply["held_reason"]  # names the stack
    emulated.tools["mounter1"].set_interlock("n2_ok", True)
    assert (await send_command(run_dir, "restart", "op", "N2 valve opened"))["ok"]
    outcome = await asyncio.wait_for(task, 60)
    assert outcome.state is RunState.COMPLETE and outcome.claims_ok and len(outcome.stacks) == 3


def jobs_in_chamber(evs: list[Event], upto: int) -> set[tuple[str, str]]:
    open_: set[tuple[str, str]] = set()
    for ev in evs:
        if ev.seq > upto:
            break
        key = (ev.data.get("stack", ""), ev.data.get("uid", ""))
        if ev.kind == "step_started":
            open_.add(key)
        elif ev.kind in ("step_completed", "step_failed", "step_unknown"):
            open_.discard(key)
    return open_


async def test_stop_finishes_the_jobs_in_the_chambers_and_starts_nothing_new(
    pools: tuple[LineConfig, EmulatedLine], runs: Path
) -> None:
    config, _ = pools
    slow = config.model_copy(update={"time_scale": 20000.0})
    task = asyncio.create_task(start_run("flow-a", slow, wafers=2, stacks=3, after=file_report))
    run_dir = await _run_dir_when(runs, 8)
    assert (await send_command(run_dir, "stop", "op", "end of shift"))["ok"]
    outcome = await asyncio.wait_for(task, 60)
    assert outcome.state is RunState.STOPPED
    evs = events(outcome)
    stop = next(e for e in evs if e.kind == "state" and e.data["to"] == "STOPPING")
    assert [e for e in evs if e.seq > stop.seq and e.kind == "step_started"] == []
    assert not jobs_in_chamber(evs, evs[-1].seq)  # everything in a chamber finished
    assert not outcome.claims_ok


async def test_abort_aborts_every_job_in_a_chamber(runs: Path) -> None:
    slow = load_line("pools").model_copy(update={"time_scale": 2000.0})  # jobs last 0.1-5 s: caught running
    async with EmulatedLine(slow) as emulated:
        assert emulated.endpoints is not None
        config = apply_endpoints(slow, emulated.endpoints)
        task = asyncio.create_task(start_run("flow-a", config, wafers=2, stacks=3, after=file_report))
        run_dir = await _run_dir_when(runs, 3)
        assert (await send_command(run_dir, "abort", "op", "smoke in bay 3"))["ok"]
        outcome = await asyncio.wait_for(task, 60)
        states = {name: tool.read(["state"])["state"] for name, tool in emulated.tools.items()}
    assert outcome.state is RunState.ABORTED
    evs = events(outcome)
    aborting = next(e for e in evs if e.kind == "state" and e.data["to"] == "ABORTING")
    running = jobs_in_chamber(evs, aborting.seq)
    assert running
    failed = {(e.data["stack"], e.data["uid"]) for e in evs if e.kind == "step_failed"}
    # a job whose end was already on its way when the abort came completes; every other one is aborted
    finished = {(e.data["stack"], e.data["uid"]) for e in evs if e.kind == "step_completed"}
    assert failed and running <= failed | finished and not jobs_in_chamber(evs, evs[-1].seq)
    assert [e for e in evs if e.seq > aborting.seq and e.kind == "step_started"] == []
    for stack in outcome.stacks:
        aborted = [w for w in stack.wafers if w.state == "ABORTED"]
        assert bool(aborted) == any(s == stack.stack_id for s, _u in failed)
    assert set(states.values()) <= {"IDLE"}, states


@asynccontextmanager
async def held_by_an_alarm(runs: Path) -> AsyncIterator[tuple[EmulatedLine, asyncio.Task[RunOutcome], Path,
                                                               list[Event]]]:
    """A 3-stack lot on its own pooled line whose coater1 alarms mid-job; yields once the lot is HELD
    (line, run task, run dir, journal so far). If the test fails inside, the run is aborted."""
    config = load_line("pools").model_copy(update={"time_scale": 100000.0})
    async with EmulatedLine(config) as emulated:
        assert emulated.endpoints is not None
        live = apply_endpoints(config, emulated.endpoints)
        emulated.tools["coater1"].faults.set(FaultSpec(kind=FaultKind.ALARM, alarm_id=101, at_fraction=0.5))
        task = asyncio.create_task(start_run("flow-a", live, wafers=2, stacks=3, after=file_report))
        run_dir = await _run_dir_when(runs, 1)
        try:
            yield emulated, task, run_dir, await _wait_state(run_dir, "HELD")
        except BaseException:
            if not task.done():
                await send_command(run_dir, "abort", "test", "test failed")
                await asyncio.wait_for(task, 30)
            raise


async def test_an_alarm_in_a_lot_holds_keeps_the_tool_for_its_job_and_shows_as_down(runs: Path) -> None:
    async with held_by_an_alarm(runs) as (_line, task, run_dir, evs):
        reply = await send_command(run_dir, "status", "test")
        await send_command(run_dir, "abort", "test", "scrap the lot")
        outcome = await asyncio.wait_for(task, 30)
    assert "tool_alarm" in reply["held_reason"] and "coater1" in reply["held_reason"]
    held_at = max(e.seq for e in evs if e.kind == "state" and e.data["to"] == "HELD")
    in_doubt = jobs_in_chamber(evs, held_at)  # only the paused job: it stays in doubt
    assert len(in_doubt) == 1
    tripped = next(e for e in evs if e.kind == "interlock_tripped")
    later_on_coater1 = [e for e in evs if e.seq > tripped.seq and e.kind == "step_started"
                        and e.data["tool"] == "coater1"]
    assert later_on_coater1 == []  # reserved for the paused job's stack
    assert outcome.state is RunState.ABORTED
    acc = account(events(outcome))
    coater1 = next(t for t in acc.tools if t.tool == "coater1")
    assert coater1.down.tool > 0 and coater1.blocked.tool >= coater1.down.tool
    assert abs(coater1.productive.tool + coater1.standby.tool + coater1.down.tool - acc.window.tool) < 1.0


async def test_scrapping_the_alarmed_stack_lets_the_rest_of_the_lot_complete(runs: Path) -> None:
    async with held_by_an_alarm(runs) as (emulated, task, run_dir, evs):
        paused = next(e for e in evs if e.kind == "interlock_tripped")
        victim = paused.data["stack"]
        refused = await send_command(run_dir, "scrap", "op", "too short", stack=victim)
        assert not refused["ok"] and "10 characters" in refused["error"]
        unknown = await send_command(run_dir, "scrap", "op", "resist burnt, scrap it", stack="S9")
        assert not unknown["ok"] and "no stack 'S9'" in unknown["error"]
        emulated.tools["coater1"].faults.clear()
        emulated.tools["coater1"].command("reset", {})  # the operator clears the tool: job FAILED
        done = await send_command(run_dir, "scrap", "op", "resist burnt, scrap it",
                                  stack=victim.rsplit("-", 1)[-1])
        assert done["ok"], done
        again = await send_command(run_dir, "scrap", "op", "resist burnt, scrap it", stack=victim)
        assert not again["ok"] and "already scrapped" in again["error"]
        assert (await send_command(run_dir, "restart", "op", "go on without it"))["ok"]
        outcome = await asyncio.wait_for(task, 60)
    assert outcome.state is RunState.COMPLETE and outcome.scrapped == {victim}
    kept = {s.stack_id for s in outcome.stacks} - {victim}
    assert outcome.claims_ok and set(outcome.claims_by_stack) == kept
    scrapped = next(s for s in outcome.stacks if s.stack_id == victim)
    assert {str(w.state) for w in scrapped.wafers} == {"ABORTED"}
    evs = events(outcome)
    mark = next(e for e in evs if e.kind == "stack_scrapped")
    assert mark.data["who"] == f"{getpass.getuser()} (op)" and mark.data["stack"] == victim
    after = [e for e in evs if e.seq > mark.seq and e.kind == "step_started" and e.data["stack"] == victim]
    assert after == []
    summary = json.loads((outcome.directory / SUMMARY).read_text())
    assert [s["scrapped"] for s in summary["stacks"]].count(True) == 1
    assert rebuild(outcome.directory / JOURNAL).scrapped == [victim]
    page = (outcome.directory / "report" / "index.html").read_text()
    assert f"scrapped by {getpass.getuser()} (op): resist burnt, scrap it" in page and "disposition" in page
