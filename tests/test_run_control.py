"""ISA-88 / PackML run control: every transition, refusals naming what is allowed, hold/restart waits,
listeners, and the rule that a transition is journaled before it takes effect."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sequencer.run.control import COMMANDS, SC, TRANSITIONS, InvalidTransition, RunControl, RunState
from sequencer.run.journal import Event, Journal, JournalError
from sequencer.run.state import rebuild

S = RunState
RUN = "20261122-061530-a3f9"
VALID = [(state, cmd, nxt) for state, row in TRANSITIONS.items() for cmd, nxt in row.items()]
INVALID = [(state, cmd) for state in RunState for cmd in COMMANDS if cmd not in TRANSITIONS[state]]


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    with Journal(tmp_path / "journal.sqlite", RUN) as j:
        yield j


def last(journal: Journal) -> Event:
    return journal.events()[-1]


def test_table_covers_every_state_and_abort_everywhere_it_should() -> None:
    assert set(TRANSITIONS) == set(RunState)
    for state, row in TRANSITIONS.items():
        assert all(cmd in COMMANDS for cmd in row)
        if state not in (S.ABORTING, S.ABORTED, S.COMPLETE):
            assert row["abort"] is S.ABORTING, state


@pytest.mark.parametrize("state, command, expected", VALID, ids=[f"{s}-{c}" for s, c, _ in VALID])
def test_every_valid_transition_is_journaled(journal: Journal, state: RunState, command: str,
                                            expected: RunState) -> None:
    ctl = RunControl(journal, state)
    assert ctl.command(command, who="alice", why="because") is expected
    assert ctl.state is expected
    ev = last(journal)
    assert ev.kind == "state"
    assert ev.data == {"from": state.value, "to": expected.value, "command": command, "who": "alice",
                       "why": "because"}


@pytest.mark.parametrize("state, command", INVALID, ids=[f"{s}-{c}" for s, c in INVALID])
def test_every_invalid_transition_raises_naming_allowed(journal: Journal, state: RunState,
                                                        command: str) -> None:
    ctl = RunControl(journal, state)
    with pytest.raises(InvalidTransition) as info:
        ctl.command(command, who="alice")
    msg = str(info.value)
    assert f"state {state}" in msg and repr(command) in msg
    assert all(allowed in msg for allowed in TRANSITIONS[state])
    assert info.value.allowed == list(TRANSITIONS[state])
    assert ctl.state is state and journal.events() == []


def test_unknown_command_raises(journal: Journal) -> None:
    with pytest.raises(InvalidTransition, match="unknown command 'launch' is not allowed in state EXECUTE"):
        RunControl(journal, S.EXECUTE).command("launch", who="alice")


@pytest.mark.parametrize("acting, done", [
    (S.STARTING, S.EXECUTE), (S.HOLDING, S.HELD), (S.UNHOLDING, S.EXECUTE), (S.STOPPING, S.STOPPED),
    (S.ABORTING, S.ABORTED), (S.COMPLETING, S.COMPLETE), (S.RESETTING, S.IDLE), (S.EXECUTE, S.COMPLETING),
])
def test_state_complete(journal: Journal, acting: RunState, done: RunState) -> None:
    ctl = RunControl(journal, acting)
    assert ctl.state_complete(why="work done") is done
    assert last(journal).data["command"] == SC and last(journal).data["who"] == "sequencer"


def test_state_complete_in_a_wait_state_refused(journal: Journal) -> None:
    with pytest.raises(InvalidTransition, match="allowed there: restart, stop, abort"):
        RunControl(journal, S.HELD).state_complete()


def test_full_lifecycle_rebuilds_from_journal(journal: Journal) -> None:
    ctl = RunControl(journal)
    for cmd in ("start", SC, "hold", SC, "restart", SC, "complete", SC, "reset", SC):
        ctl.command(cmd, who="op")
    path = [e.data["to"] for e in journal.events()]
    assert path == ["STARTING", "EXECUTE", "HOLDING", "HELD", "UNHOLDING", "EXECUTE", "COMPLETING",
                    "COMPLETE", "RESETTING", "IDLE"]
    assert rebuild(journal).state is ctl.state is S.IDLE


def test_held_reason_set_kept_and_cleared(journal: Journal) -> None:
    ctl = RunControl(journal, S.EXECUTE)
    assert ctl.held_reason is None
    ctl.command("hold", who="interlock:chamber_door", why="door opened on etcher1")
    assert ctl.held_reason == "interlock:chamber_door: door opened on etcher1"
    ctl.state_complete()
    assert ctl.state is S.HELD and ctl.held_reason == "interlock:chamber_door: door opened on etcher1"
    assert rebuild(journal).held_reason == ctl.held_reason
    ctl.command("restart", who="alice")
    assert ctl.held_reason is None
    ctl.state_complete()
    ctl.command("hold", who="operator bob")
    assert ctl.held_reason == "operator bob"
    ctl.command("stop", who="bob")
    assert ctl.held_reason is None and rebuild(journal).held_reason is None
    assert RunControl(journal, S.HELD, held_reason="x: y").held_reason == "x: y"  # resume
    assert RunControl(journal, S.EXECUTE, held_reason="x: y").held_reason is None


def test_requested_predicates(journal: Journal) -> None:
    expect = {S.ABORTING: "abort", S.ABORTED: "abort", S.STOPPING: "stop", S.STOPPED: "stop",
              S.HOLDING: "hold", S.HELD: "hold"}
    for state in RunState:
        ctl = RunControl(journal, state)
        got = [n for n, f in (("abort", ctl.abort_requested), ("stop", ctl.stop_requested),
                              ("hold", ctl.hold_requested)) if f()]
        assert got == ([expect[state]] if state in expect else []), state


async def test_wait_until_runnable_blocks_while_held_and_resumes_on_restart(journal: Journal) -> None:
    ctl = RunControl(journal, S.EXECUTE)
    assert await asyncio.wait_for(ctl.wait_until_runnable(), 0.5) is S.EXECUTE
    ctl.command("hold", who="alice", why="inspect")
    waiter = asyncio.create_task(ctl.wait_until_runnable())
    await asyncio.sleep(0.02)
    assert not waiter.done()  # HOLDING
    ctl.state_complete()
    await asyncio.sleep(0.02)
    assert not waiter.done()  # HELD
    ctl.command("restart", who="alice")
    await asyncio.sleep(0.02)
    assert not waiter.done()  # UNHOLDING: still not runnable
    ctl.state_complete()
    assert await asyncio.wait_for(waiter, 0.5) is S.EXECUTE


@pytest.mark.parametrize("command", ["stop", "abort"])
async def test_wait_until_runnable_returns_for_wind_down(journal: Journal, command: str) -> None:
    ctl = RunControl(journal, S.HELD)
    waiter = asyncio.create_task(ctl.wait_until_runnable())
    await asyncio.sleep(0.01)
    assert not waiter.done()
    ctl.command(command, who="alice")
    assert await asyncio.wait_for(waiter, 0.5) is TRANSITIONS[S.HELD][command]
    for state in (S.STOPPING, S.ABORTING, S.STOPPED, S.ABORTED, S.COMPLETE):
        assert await asyncio.wait_for(RunControl(journal, state).wait_until_runnable(), 0.5) is state


async def test_cancelled_waiter_leaves_nothing_behind(journal: Journal) -> None:
    ctl = RunControl(journal, S.HELD)
    waiter = asyncio.create_task(ctl.wait_until_runnable())
    await asyncio.sleep(0.01)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert not ctl._waiters


def test_subscribe_fires_in_order_including_nested_commands(journal: Journal) -> None:
    ctl = RunControl(journal, S.EXECUTE)
    seen: list[tuple[str, RunState, RunState]] = []

    def engine(old: RunState, new: RunState) -> None:
        seen.append(("engine", old, new))
        if new is S.ABORTING:  # the engine aborts the tool, then reports the safe state reached
            ctl.state_complete(why="tool aborted")

    ctl.subscribe(engine)
    ctl.subscribe(lambda old, new: seen.append(("ui", old, new)))
    assert ctl.command("abort", who="interlock:emo", why="EMO pressed") is S.ABORTING  # what abort did
    assert ctl.state is S.ABORTED  # the listener's nested sc applied at once
    assert seen == [("engine", S.EXECUTE, S.ABORTING), ("ui", S.EXECUTE, S.ABORTING),
                    ("engine", S.ABORTING, S.ABORTED), ("ui", S.ABORTING, S.ABORTED)]


def test_failing_listener_is_logged_and_others_still_run(journal: Journal,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    ctl = RunControl(journal, S.EXECUTE)
    seen: list[RunState] = []

    def broken(old: RunState, new: RunState) -> None:
        raise RuntimeError("boom")

    ctl.subscribe(broken)
    ctl.subscribe(lambda old, new: seen.append(new))
    with caplog.at_level(logging.ERROR, logger="sequencer.run.control"):
        assert ctl.command("hold", who="alice") is S.HOLDING
    assert seen == [S.HOLDING] and "boom" in caplog.text


class SpyJournal(Journal):
    """Records the control's state at the moment each event is appended; can be made to fail."""

    control: RunControl | None = None
    fail = False
    states_at_append: list[RunState]

    def append(self, kind: str, /, **data: Any) -> Event:
        if self.fail:
            raise JournalError("disk full")
        assert self.control is not None
        self.states_at_append.append(self.control.state)
        return super().append(kind, **data)


def test_every_transition_journaled_before_it_takes_effect(tmp_path: Path) -> None:
    with SpyJournal(tmp_path / "j.sqlite", RUN) as spy:
        spy.states_at_append = []
        ctl = RunControl(spy)
        spy.control = ctl
        notified: list[RunState] = []
        ctl.subscribe(lambda old, new: notified.append(new))
        for cmd in ("start", SC, "hold", SC, "restart", SC, "stop", SC):
            ctl.command(cmd, who="op")
        froms = [RunState(e.data["from"]) for e in spy.events()]
        assert spy.states_at_append == froms  # still in the old state while the event was written
        spy.fail = True
        with pytest.raises(JournalError, match="disk full"):
            ctl.command("reset", who="op")
        assert ctl.state is S.STOPPED and notified[-1] is S.STOPPED  # not journaled -> not taken
