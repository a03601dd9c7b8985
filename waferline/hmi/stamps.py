"""When did a run's journal last change? SQLite in WAL mode writes new events to `journal.sqlite-wal`
and touches the database file itself only at a checkpoint, so both files' sizes and times count."""

from __future__ import annotations

from sequencer.run.rundir import JOURNAL, runs_dir


def journal_stamp(run_id: str) -> int:
    """A number that changes whenever the run's journal does (0 if it cannot be read)."""
    stamp = 0
    base = runs_dir() / run_id / JOURNAL
    for path in (base, base.with_name(base.name + "-wal")):
        try:
            st = path.stat()
        except OSError:
            continue
        stamp = hash((stamp, st.st_mtime_ns, st.st_size))
    return stamp
