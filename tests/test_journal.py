"""The journal: append-only, one writer, survives kill -9, and a run's state rebuilds from it alone."""

from __future__ import annotations

import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from pydantic import BaseModel

from sequencer.run.control import RunState
from sequencer.run.journal import Event, Journal, JournalError, JournalLocked, read_events, read_run_id
from sequencer.run.state import rebuild

RUN = "20261122-061530-a3f9"
TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture
def jpath(tmp_path: Path) -> Path:
    return tmp_path / "journal.sqlite"


class Recipe(BaseModel):
    temperature_c: float


def test_append_and_read_back(jpath: Path) -> None:
    with Journal(jpath, RUN) as j:
        e1 = j.append("run_created", flow="A", wafers=4, line="emulated", time_scale=1000.0, stack_id="S1")
        e2 = j.append("step_started", uid="A4.w1", tool="bonder1", kind="bonder", job_id=7,
                      recipe=Recipe(temperature_c=350))
        assert (e1.seq, e2.seq) == (1, 2)
        assert e2.data == {"uid": "A4.w1", "tool": "bonder1", "kind": "bonder", "job_id": 7,
                           "recipe": {"temperature_c": 350.0}}
        assert TS.match(e1.ts) and e1.run_id == RUN
        assert j.events() == [e1, e2]
        assert j.events(since=1) == [e2]
        assert j.last_seq == 2


def test_seq_is_monotonic_without_gaps(jpath: Path) -> None:
    with Journal(jpath, RUN) as j:
        for i in range(50):
            j.append("note", text=str(i))
        assert [e.seq for e in j.events()] == list(range(1, 51))


def test_update_delete_and_replace_refused_by_triggers(jpath: Path) -> None:
    with Journal(jpath, RUN) as j:
        j.append("note", text="original")
    db = sqlite3.connect(jpath, isolation_level=None)
    try:
        for sql in ("UPDATE events SET data='{}' WHERE seq=1", "DELETE FROM events WHERE seq=1",
                    "DELETE FROM events", "UPDATE run SET run_id='other'", "DELETE FROM run",
                    "INSERT OR REPLACE INTO events VALUES (1, 'x', 'r', 'note', '{}', NULL)",
                    "INSERT INTO events VALUES (NULL, 'x', 'r', 'note', '{}', NULL)"):
            with pytest.raises(sqlite3.DatabaseError, match="append-only"):
                db.execute(sql)
    finally:
        db.close()
    assert [e.data for e in read_events(jpath)] == [{"text": "original"}]


def test_reopen_continues_seq_and_run(jpath: Path) -> None:
    with Journal(jpath, RUN) as j:
        j.append("note", text="a")
        j.append("note", text="b")
    with Journal.open_existing(jpath) as j:
        assert j.run_id == RUN and read_run_id(jpath) == RUN
        assert j.append("note", text="c").seq == 3
    assert [e.data["text"] for e in read_events(jpath)] == ["a", "b", "c"]


def test_reopen_refuses_another_run_and_missing_file(jpath: Path) -> None:
    Journal(jpath, RUN).close()
    with pytest.raises(JournalError, match="belongs to run 20261122-061530-a3f9"):
        Journal(jpath, "20261122-061531-0000")
    with pytest.raises(JournalError, match="no journal"):
        Journal.open_existing(jpath.with_name("nope.sqlite"))


def test_second_writer_refused_reader_allowed(jpath: Path) -> None:
    with Journal(jpath, RUN) as j:
        j.append("note", text="first")
        with pytest.raises(JournalLocked, match=r"already open for writing by pid \d+"):
            Journal.open_existing(jpath)
        code = f"from sequencer.run.journal import Journal; Journal.open_existing({str(jpath)!r})"
        other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
        assert other.returncode != 0 and "JournalLocked" in other.stderr
        j.append("note", text="second")
        assert [e.seq for e in read_events(jpath)] == [1, 2]  # a reader sees the live writer's commits
        assert rebuild(jpath).last_seq == 2
    with Journal.open_existing(jpath) as j:  # lock released on close
        assert j.last_seq == 2


def test_closed_journal_refuses_append(jpath: Path) -> None:
    j = Journal(jpath, RUN)
    j.close()
    j.close()  # idempotent
    with pytest.raises(JournalError, match="closed"):
        j.append("note", text="late")


def test_unserialisable_data_refused(jpath: Path) -> None:
    with Journal(jpath, RUN) as j, pytest.raises(TypeError, match="JSON-serialisable"):
        j.append("note", text=object())
    assert read_events(jpath) == []


@pytest.mark.parametrize("sync, level", [("normal", 1), ("full", 2)])
def test_sync_modes(jpath: Path, sync: str, level: int) -> None:
    with Journal(jpath, RUN, sync=sync) as j:  # type: ignore[arg-type]
        assert j._db.execute("PRAGMA synchronous").fetchone()[0] == level
        assert j._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with pytest.raises(JournalError, match="'normal' or 'full'"):
        Journal(jpath, RUN, sync="fast")  # type: ignore[arg-type]


def test_sigkill_right_after_append_keeps_every_event(jpath: Path) -> None:
    n = 200
    script = textwrap.dedent(f"""
        import os, signal
        from pathlib import Path
        from sequencer.run.journal import Journal
        j = Journal(Path({str(jpath)!r}), {RUN!r})
        for i in range({n}):
            j.append("note", text=f"event {{i}}")
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    events = read_events(jpath)
    assert [e.seq for e in events] == list(range(1, n + 1))
    assert events[-1].data == {"text": f"event {n - 1}"}
    with Journal.open_existing(jpath) as j:  # the dead writer's lock went with it
        assert j.append("note", text="after crash").seq == n + 1


def _ev(seq: int, kind: str, /, **data: object) -> Event:
    return Event(seq=seq, ts="2026-11-22T06:15:30.000Z", run_id=RUN, kind=kind, data=data)


def test_rebuild_from_events() -> None:
    events = [
        _ev(1, "run_created", flow="A", wafers=4, line="emulated", time_scale=1000, stack_id="S1"),
        _ev(2, "state", **{"from": "IDLE", "to": "STARTING", "command": "start", "who": "op", "why": ""}),
        _ev(3, "state", **{"from": "STARTING", "to": "EXECUTE", "command": "sc", "who": "seq", "why": ""}),
        _ev(4, "step_started", uid="s1", tool="grinder1", kind="grinder", job_id=11, tool_job_before=10),
        _ev(5, "step_completed", uid="s1", tool="grinder1", job_id=11, result={"thickness_um": 50}),
        _ev(6, "step_started", uid="s2", tool="plater1", kind="plater", job_id=12),
        _ev(7, "step_failed", uid="s2", tool="plater1", job_id=12, error="ToolAlarm", reason="bath low"),
        _ev(8, "permissive_refused", uid="s3", interlock="door_closed", reason="door open"),
        _ev(9, "bypass", interlock="door_closed", role="engineer", reason="sensor broken",
            expires_at="2026-11-22T07:00:00Z", who="bob"),
        _ev(10, "step_started", uid="s3", tool="etcher1", kind="etcher", job_id=13, tool_job_before=9),
        _ev(11, "step_started", uid="s4", tool="saw1", kind="dicing_saw", job_id=14),
        _ev(12, "step_unknown", uid="s4", tool="saw1", job_id=14, reason="no reply"),
        _ev(13, "alarm", tool="saw1", alarm_id=3, text="blade"),
        _ev(14, "state", **{"from": "EXECUTE", "to": "HOLDING", "command": "hold",
                            "who": "interlock:outcome_unknown", "why": "s4 unknown"}),
        _ev(15, "state", **{"from": "HOLDING", "to": "HELD", "command": "sc", "who": "sequencer", "why": ""}),
        _ev(16, "some_future_kind", x=1),
    ]
    snap = rebuild(events)
    assert (snap.run_id, snap.flow, snap.wafers, snap.stack_id) == (RUN, "A", 4, "S1")
    assert snap.time_scale == 1000.0 and snap.created
    assert snap.state is RunState.HELD and snap.last_seq == 16
    assert snap.held_reason == "interlock:outcome_unknown: s4 unknown"
    s = snap.steps
    assert s["s1"].status == "completed" and s["s1"].result == {"thickness_um": 50}
    assert s["s1"].kind == "grinder"
    assert s["s2"].status == "failed" and (s["s2"].error, s["s2"].reason) == ("ToolAlarm", "bath low")
    assert s["s3"].status == "started" and s["s3"].tool_job_before == 9
    assert s["s4"].status == "unknown" and s["s4"].reason == "no reply"
    assert [r.uid for r in snap.in_doubt()] == ["s3"]
    assert snap.bypasses[0].role == "engineer" and snap.bypasses[0].seq == 9
    assert snap.alarms[0]["alarm_id"] == 3
    # recovery: the tool says it never saw the start -> pending again; then completed by a fresh start
    more = [_ev(17, "step_recovered", uid="s3", tool="etcher1", job_id=13, outcome="NOT_STARTED"),
            _ev(18, "state", **{"from": "HELD", "to": "UNHOLDING", "command": "restart", "who": "op",
                                "why": ""})]
    snap = rebuild(events + more)
    assert snap.steps["s3"].status == "pending" and snap.in_doubt() == []
    assert snap.state is RunState.UNHOLDING and snap.held_reason is None


def test_rebuild_from_journal_and_file_agree(jpath: Path) -> None:
    with Journal(jpath, RUN) as j:
        j.append("run_created", flow="B", wafers=2, line="l", time_scale=1.0, stack_id="S9")
        j.append("step_started", uid="x", tool="cvd1", kind="cvd", job_id=1, tool_job_before=0)
        j.append("traveler", stack={"stack_id": "S9", "wafers": []})
        live = rebuild(j)
    assert rebuild(jpath) == live
    assert live.traveler == {"stack_id": "S9", "wafers": []} and [r.uid for r in live.in_doubt()] == ["x"]
    with Journal(jpath.with_name("empty.sqlite"), RUN) as empty:
        assert rebuild(empty).run_id == RUN and not rebuild(empty).created
    with pytest.raises(ValueError, match="empty journal"):
        rebuild([])


def test_deferred_events_commit_with_the_next_append_and_on_close(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    journal = Journal(path, "run-1")
    journal.append("step_started", uid="A1")
    journal.append_deferred("step_completed", uid="A1")
    assert [e.kind for e in read_events(path)] == ["step_started"]  # other readers: not yet committed
    journal.append("step_started", uid="A2")
    assert [e.kind for e in read_events(path)] == ["step_started", "step_completed", "step_started"]
    journal.append_deferred("step_completed", uid="A2")
    journal.close()
    assert [e.data["uid"] for e in read_events(path)][-1] == "A2"


def test_commit_writes_like_append_and_returns_the_seq(jpath: Path) -> None:
    with Journal(jpath, RUN) as j:
        j.append_deferred("step_completed", uid="A1", job_id=1)
        seq = j.commit("step_started", uid="A2", tool="coater1", kind="coater", job_id=2)
        assert seq == 2 and j.last_seq == 2
    events = read_events(jpath)  # committed: a reader sees both, in order
    assert [(e.seq, e.kind, e.data.get("uid")) for e in events] == [
        (1, "step_completed", "A1"), (2, "step_started", "A2")]
    assert events[1].data["kind"] == "coater"
