"""A journal you can prove untouched (issue 11.4): a hash chain over every event, checked by
`waferline verify`, `report` and `resume`; each rewritten, deleted or inserted event is named by seq.

The attacks are the file owner's: drop the append-only triggers, then rewrite, delete or insert rows.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

import pytest

from sequencer.run.chain import TAMPERED_EXIT
from sequencer.run.journal import Journal, read_events, verify_journal
from sequencer.run.rundir import JOURNAL, SUMMARY
from tests.fixtures.sequencer import WAFERLINE

RUN = "20261204-120000-abcd"


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A finished-looking run: 6 events (the last, seq 6, the abort), a summary recording the head."""
    directory = tmp_path / RUN
    directory.mkdir()
    with Journal(directory / JOURNAL, RUN) as j:
        j.append("run_created", flow="flow-a", wafers=2, line="emulated", time_scale=1.0,
                 stack_id=f"{RUN}-S1")
        j.append("state", **{"from": "IDLE", "to": "STARTING", "command": "start", "who": "alice", "why": ""})
        j.append("bypass", interlock="n2_supply_on", role="engineer", reason="sensor replaced", who="alice",
                 expires_at="2026-12-04T13:00:00+00:00")
        j.append_deferred("note", text="deferred")
        j.append("note", text="committed with the deferred one")
        j.append("state", **{"from": "STARTING", "to": "ABORTING", "command": "abort", "who": "bob",
                             "why": ""})
        seq, head = j.head
    (directory / SUMMARY).write_text(json.dumps({"journal_head": {"seq": seq, "hash": head}}))
    return directory


def tamper(path: Path, *sql: str) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    try:
        for trigger in ("events_no_update", "events_no_delete", "events_seq_extends"):
            db.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        for statement in sql:
            db.execute(statement)
    finally:
        db.close()


def cli(*args: str, runs: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*WAFERLINE, *args], capture_output=True, text=True, timeout=60,
                          env={"WAFERLINE_RUNS_DIR": str(runs), "PATH": "/usr/bin:/bin"})


def test_an_untouched_journal_verifies(run_dir: Path) -> None:
    report = verify_journal(run_dir / JOURNAL)
    assert report.ok and report.events == 6 and report.head_seq == 6 and report.unchained == 0
    res = cli("verify", RUN, runs=run_dir.parent)
    assert res.returncode == 0 and "journal intact, 6 events" in res.stdout, res.stdout + res.stderr


@pytest.mark.parametrize(("sql", "expected"), [
    ("UPDATE events SET data = replace(data, 'alice', 'mallory') WHERE seq = 3",
     "event 3 (bypass) does not match its hash"),
    ("DELETE FROM events WHERE kind = 'bypass'", "seq 3-3 missing before event 4"),
    ("INSERT INTO events VALUES (7, '2026-12-04T12:00:00.000Z', '" + RUN + "', 'note', '{}', 'f00')",
     "event 7 (note) does not match its hash"),
    ("UPDATE events SET seq = seq + 10 WHERE seq >= 5", "seq 5-14 missing before event 15"),
])
def test_rewritten_deleted_or_inserted_events_are_named(run_dir: Path, sql: str, expected: str) -> None:
    tamper(run_dir / JOURNAL, sql)
    report = verify_journal(run_dir / JOURNAL)
    assert not report.ok and any(expected in p for p in report.problems), report.problems
    res = cli("verify", RUN, runs=run_dir.parent)
    assert res.returncode == TAMPERED_EXIT and expected in " ".join(res.stderr.split()), res.stderr


def test_a_journal_cut_short_is_caught_by_the_recorded_head(run_dir: Path) -> None:
    tamper(run_dir / JOURNAL, "DELETE FROM events WHERE seq = 6")  # the abort, the last event
    assert verify_journal(run_dir / JOURNAL).ok  # the chain alone cannot see its own end cut off
    res = cli("verify", RUN, runs=run_dir.parent)
    said = " ".join(res.stderr.split())
    assert res.returncode == TAMPERED_EXIT and "events at its end were deleted" in said, said


def test_report_and_resume_refuse_a_rewritten_journal(run_dir: Path) -> None:
    tamper(run_dir / JOURNAL, "UPDATE events SET data = replace(data, 'bob', 'carol') WHERE seq = 6")
    for verb in (["report", RUN], ["resume", RUN]):
        res = cli(*verb, runs=run_dir.parent)
        said = " ".join(res.stderr.split())
        assert res.returncode == TAMPERED_EXIT and "event 6 (state) does not match its hash" in said, said


def test_a_journal_from_before_the_chain_reads_and_resumes_chained(tmp_path: Path) -> None:
    """Today's journals stay readable: the old schema has no hash column; reopening adds it and chains
    the new events from there."""
    path = tmp_path / JOURNAL
    db = sqlite3.connect(path, isolation_level=None)
    db.executescript("""
        CREATE TABLE run (run_id TEXT NOT NULL, created TEXT NOT NULL);
        CREATE TABLE events (seq INTEGER PRIMARY KEY, ts TEXT NOT NULL, run_id TEXT NOT NULL,
                             kind TEXT NOT NULL, data TEXT NOT NULL);
    """)
    db.execute("INSERT INTO run VALUES (?, '2026-11-01T00:00:00.000Z')", (RUN,))
    db.execute("INSERT INTO events VALUES (1, '2026-11-01T00:00:00.000Z', ?, 'note', '{\"text\": \"old\"}')",
               (RUN,))
    db.close()
    assert verify_journal(path).ok and verify_journal(path).unchained == 1
    with Journal.open_existing(path) as j:
        j.append("note", text="new")
    report = verify_journal(path)
    assert report.ok and report.unchained == 1 and report.head_seq == 2
    assert [e.data["text"] for e in read_events(path)] == ["old", "new"]
