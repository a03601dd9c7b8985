"""The run journal: an append-only event log in SQLite (WAL) from which a run's state can be rebuilt.

The engine writes an event before and after every step, so a crash at any instant leaves a record of
which steps were in a chamber (`step_started` with no outcome): recovery asks those tools what
happened instead of re-running a process step blindly.

Event kinds (`data` fields):

- run_created{flow, wafers, line, time_scale, stack_id}: first event of a run.
- state{from, to, command, who, why}: every ISA-88/PackML transition, written before it takes effect.
- step_started{uid, tool, kind, job_id, recipe, tool_job_before}: the process job is about to start;
  tool_job_before (the tool's last job id) lets recovery tell "never started" from "ran".
- step_completed{uid, tool, job_id, result}; step_failed{uid, tool, job_id, error, reason}.
- step_unknown{uid, tool, job_id, reason}: the outcome could not be established (wafer held for an operator).
- step_recovered{uid, tool, job_id, outcome, result}: an in-doubt step resolved by asking the tool.
- permissive_refused{uid, interlock, reason}: a step was not started because a permissive was false.
- interlock_tripped{uid, interlock, reason, action}: a run interlock or safety input fired (hold/stop/abort).
- bypass{interlock, role, reason, expires_at, who}: an interlock bypass was granted.
- alarm{tool, alarm_id, text}; traveler{stack}: wafer-stack snapshot at the end; note{text}.
Every row also carries `hash`, the SHA-256 chain over the previous hash and the row (chain.py).
Writers may add fields (and kinds, e.g. bypass_used); readers ignore what they do not know.

Durability (`sync`): in WAL mode every commit is written to the -wal file before `append` returns.
"normal" (synchronous=NORMAL) skips the fsync: a committed event survives `kill -9` of the writer and
any crash of the process, but the last few events may be lost on power loss or a kernel panic; an
append costs tens of microseconds. "full" fsyncs the WAL on every commit, so an event also survives
power loss, at the cost of one fsync per append (sub-millisecond on NVMe, milliseconds on spinning or
network disks) - pick it on the fab floor when the host has no UPS, not in CI.

Integrity: triggers RAISE on UPDATE and DELETE and refuse an INSERT whose seq does not extend the log
(which also blocks INSERT OR REPLACE). One writer per journal: the writer holds an flock on
`<journal>.lock` (with its pid inside); the kernel drops it when the writer dies, even by SIGKILL.
Readers (`read_events`) take no lock and may read while the writer appends.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
import sqlite3
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from pydantic import BaseModel
from pydantic_core import PydanticSerializationError, to_json

from drivers.errors import WaferlineError
from sequencer.run.chain import ChainReport, JournalTampered, genesis, link, verify_rows
from sequencer.run.clock import utc_now_ms
from sequencer.run.events import Body, body, body_json

_SCHEMA = """
CREATE TABLE IF NOT EXISTS run (run_id TEXT NOT NULL, created TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY, ts TEXT NOT NULL, run_id TEXT NOT NULL, kind TEXT NOT NULL, data TEXT NOT NULL,
    hash TEXT
);
CREATE TRIGGER IF NOT EXISTS events_no_update BEFORE UPDATE ON events
    BEGIN SELECT RAISE(ABORT, 'journal is append-only: UPDATE refused'); END;
CREATE TRIGGER IF NOT EXISTS events_no_delete BEFORE DELETE ON events
    BEGIN SELECT RAISE(ABORT, 'journal is append-only: DELETE refused'); END;
CREATE TRIGGER IF NOT EXISTS events_seq_extends BEFORE INSERT ON events
    WHEN NEW.seq IS NULL OR NEW.seq <= coalesce((SELECT max(seq) FROM events), 0)
    BEGIN SELECT RAISE(ABORT, 'journal is append-only: seq must extend the log'); END;
CREATE TRIGGER IF NOT EXISTS run_no_update BEFORE UPDATE ON run
    BEGIN SELECT RAISE(ABORT, 'journal is append-only: UPDATE refused'); END;
CREATE TRIGGER IF NOT EXISTS run_no_delete BEFORE DELETE ON run
    BEGIN SELECT RAISE(ABORT, 'journal is append-only: DELETE refused'); END;
"""
_INSERT = "INSERT INTO events (seq, ts, run_id, kind, data, hash) VALUES (?, ?, ?, ?, ?, ?)"


class JournalError(WaferlineError):
    """The journal cannot be opened or written (wrong run, not a journal, disk error)."""


class JournalLocked(JournalError):
    """Another live process already writes this journal: a run has exactly one sequencer."""


class Event(BaseModel):
    """One journal record; `seq` starts at 1 and has no gaps. Folds read `body`, its typed data."""

    seq: int
    ts: str
    run_id: str
    kind: str
    data: dict[str, Any]

    @functools.cached_property
    def body(self) -> Body:
        return body(self.kind, self.data)


def _unserialisable(value: Any) -> Any:
    raise TypeError(f"journal data must be JSON-serialisable, got {type(value).__name__}: {value!r}")


def _encode(data: dict[str, Any]) -> str:
    """An event's data as compact JSON text. pydantic-core's encoder: 4x faster than the json module
    back to back and 2x right after an idle wait, where the engine calls it. Models, enums, datetimes,
    paths, sets and tuples are written in their JSON form; NaN and Infinity as json.dumps writes them."""
    try:
        return to_json(data, inf_nan_mode="constants", fallback=_unserialisable).decode()
    except PydanticSerializationError as exc:
        raise TypeError(f"journal data must be JSON-serialisable: {exc}") from None


def _typed(event: Body | str, data: dict[str, Any]) -> tuple[str, dict[str, Any], bool]:
    """(kind, data to store, already checked) of a model, or of a kind and its fields (checked once
    encoded, by _write, so models and enums among them are welcome)."""
    if isinstance(event, Body):
        if data:
            raise TypeError("give an event model or a kind with fields, not both")
        return event.KIND, event.stored(), True
    return event, data, False


def _row_to_event(row: tuple[int, str, str, str, str]) -> Event:
    seq, ts, run_id, kind, data = row
    return Event(seq=seq, ts=ts, run_id=run_id, kind=kind, data=json.loads(data))


def _lock_path(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


def _acquire_writer_lock(path: Path) -> int:
    """flock `<journal>.lock` or raise JournalLocked naming the holder's pid. Never unlinked, so two
    writers can never lock different inodes of the same name."""
    lock = _lock_path(path)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o640)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise JournalLocked(
            f"journal {path} is already open for writing by pid {holder} (lock {lock}); a run has one "
            "sequencer - control it with `waferline hold|stop|abort RUN_ID` or wait for it to exit"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


class Journal:
    """The single writer of one run's journal. Use from one thread (the sequencer's event loop)."""

    def __init__(self, path: Path, run_id: str, *, sync: Literal["normal", "full"] = "normal") -> None:
        if sync not in ("normal", "full"):
            raise JournalError(f"journal sync must be 'normal' or 'full', got {sync!r}")
        self.path = Path(path)
        self.sync = sync
        self._lock_fd: int | None = _acquire_writer_lock(self.path)
        self._pending: list[tuple[int, str, str, str, str, str]] = []  # deferred rows, written with the next
        try:
            self._db = self._connect()
            self.run_id = self._bind_run(run_id)
            row = self._db.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()
            self._seq: int = int(row[0])
            last = self._db.execute("SELECT hash FROM events WHERE hash IS NOT NULL ORDER BY seq DESC LIMIT 1"
                                    ).fetchone()
            self._head: str = last[0] if last else genesis(self.run_id)  # the hash chain (chain.py)
        except BaseException:
            self._release()
            raise

    @classmethod
    def open_existing(cls, path: Path, *, sync: Literal["normal", "full"] = "normal") -> Journal:
        """Reopen a run's journal for resume: same run_id, seq continues after the last event."""
        if not Path(path).is_file():
            raise JournalError(f"no journal at {path}")
        return cls(path, read_run_id(path), sync=sync)

    def _connect(self) -> sqlite3.Connection:
        try:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=True)
            mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise JournalError(f"{self.path} is not a usable journal: {exc}") from exc
        if str(mode).lower() != "wal":
            db.close()
            raise JournalError(f"{self.path}: SQLite refused WAL mode (got {mode!r}); a network disk?")
        with contextlib.suppress(OSError):  # the owner and group only; SQLite's -wal/-shm follow the file
            os.chmod(self.path, 0o640)
        db.execute(f"PRAGMA synchronous={self.sync.upper()}")
        db.executescript(_SCHEMA)
        if "hash" not in {r[1] for r in db.execute("PRAGMA table_info(events)")}:
            db.execute("ALTER TABLE events ADD COLUMN hash TEXT")  # a journal from before the chain
        return db

    def _bind_run(self, run_id: str) -> str:
        row = self._db.execute("SELECT run_id FROM run").fetchone()
        if row is None:
            self._db.execute("INSERT INTO run (run_id, created) VALUES (?, ?)", (run_id, utc_now_ms()))
            return run_id
        if row[0] != run_id:
            raise JournalError(f"journal {self.path} belongs to run {row[0]}, not {run_id}")
        return str(row[0])

    @property
    def last_seq(self) -> int:
        return self._seq

    def append(self, event: Body | str, /, **data: Any) -> Event:
        """Write one event (a model of sequencer/run/events.py, or its kind and fields, validated the
        same way); it is committed (survives kill -9) when this returns, together with any deferred
        events before it."""
        kind, data, checked = _typed(event, data)
        seq, ts, payload = self._write(kind, data, checked)
        self._flush(kind)
        return Event(seq=seq, ts=ts, run_id=self.run_id, kind=kind, data=json.loads(payload))

    def commit(self, event: Body | str, /, **data: Any) -> int:
        """`append` without building the Event: the engine's write-ahead `step_started`, on the path
        from one job to the next. Returns the event's seq."""
        kind, data, checked = _typed(event, data)
        seq = self._write(kind, data, checked)[0]
        self._flush(kind)
        return seq

    def append_deferred(self, event: Body | str, /, **data: Any) -> int:
        """Queue one event in memory and return its seq; the next append(), events() or close()
        writes it in the same transaction as its own.

        Group commit for events a crash may lose safely - the engine's step_completed, which resume
        re-learns by asking the tool: one SQLite transaction per step instead of two, and no SQLite
        work at all on the wake-up after a job (on a VM the first SQLite call after an idle wait
        costs ~200 us, back to back ~20 us)."""
        kind, data, checked = _typed(event, data)
        return self._write(kind, data, checked)[0]

    def _write(self, kind: str, data: dict[str, Any], checked: bool = False) -> tuple[int, str, str]:
        """Queue one row; (seq, ts, its JSON text)."""
        if self._lock_fd is None:
            raise JournalError(f"journal {self.path} is closed")
        seq = self._seq + 1
        ts = utc_now_ms()
        payload = _encode(data)
        if not checked:
            body_json(kind, payload)  # UnknownEvent for a kind or field the journal does not know
        head = link(self._head, seq, ts, self.run_id, kind, payload)
        self._pending.append((seq, ts, self.run_id, kind, payload, head))
        self._seq, self._head = seq, head
        return seq, ts, payload

    def _flush(self, kind: str = "deferred events") -> None:
        """Write the queued events in one transaction (committed: survives kill -9 when this returns)."""
        if not self._pending:
            return
        rows, self._pending = self._pending, []
        try:
            if len(rows) == 1:
                self._db.execute(_INSERT, rows[0])
            else:
                self._db.execute("BEGIN")
                self._db.executemany(_INSERT, rows)
                self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            if self._db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
            self._seq = rows[0][0] - 1
            self._head = self._stored_head()
            raise JournalError(f"journal {self.path}: cannot append {kind}: {exc}") from exc

    @property
    def head(self) -> tuple[int, str]:
        """The last event's (seq, hash): what a site records to prove the journal untouched later."""
        return self._seq, self._head

    def _stored_head(self) -> str:
        last = self._db.execute("SELECT hash FROM events WHERE hash IS NOT NULL ORDER BY seq DESC LIMIT 1"
                                ).fetchone()
        return str(last[0]) if last else genesis(self.run_id)

    def events(self, since: int = 0) -> list[Event]:
        """Events with seq > since, in order (queued deferred events are written first)."""
        self._flush()
        rows = self._db.execute(
            "SELECT seq, ts, run_id, kind, data FROM events WHERE seq > ? ORDER BY seq", (since,)
        ).fetchall()
        return [_row_to_event(r) for r in rows]

    def _release(self) -> None:
        db = getattr(self, "_db", None)
        if db is not None:
            with contextlib.suppress(JournalError):
                self._flush()  # deferred events: a clean close keeps them
            db.close()
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._lock_fd, 0)
            os.close(self._lock_fd)  # closing the fd drops the flock
            self._lock_fd = None

    def close(self) -> None:
        """Close the database and release the writer lock; idempotent."""
        if self._lock_fd is not None:
            self._release()

    def __enter__(self) -> Journal:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _reader(path: Path) -> sqlite3.Connection:
    if not Path(path).is_file():
        raise JournalError(f"no journal at {path}")
    return sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)


def _query(path: Path, *statements: tuple[str, tuple[Any, ...]]) -> list[list[Any]]:
    """Run read-only statements on a journal without taking the writer lock; one list of rows each."""
    db = _reader(path)
    try:
        return [db.execute(sql, params).fetchall() for sql, params in statements]
    except sqlite3.DatabaseError as exc:
        raise JournalError(f"{path} is not a waferline journal: {exc}") from exc
    finally:
        db.close()


def read_run_id(path: Path) -> str:
    """The run a journal belongs to, without taking the writer lock."""
    (rows,) = _query(path, ("SELECT run_id FROM run", ()))
    if not rows:
        raise JournalError(f"journal {path} has no run record")
    return str(rows[0][0])


def read_events(path: Path, since: int = 0) -> list[Event]:
    """Read a journal while its sequencer may still be writing (status, report): no lock taken."""
    (rows,) = _query(path, ("SELECT seq, ts, run_id, kind, data FROM events WHERE seq > ? ORDER BY seq",
                            (since,)))
    return [_row_to_event(r) for r in rows]


def verify_journal(path: Path) -> ChainReport:
    """Check a journal's hash chain and seq continuity (chain.py), without taking the writer lock."""
    run_id = read_run_id(path)
    (columns,) = _query(path, ("PRAGMA table_info(events)", ()))
    hashes = "hash" if "hash" in {c[1] for c in columns} else "NULL"
    (rows,) = _query(path, (f"SELECT seq, ts, run_id, kind, data, {hashes} FROM events ORDER BY seq", ()))
    return verify_rows(run_id, rows)


def require_intact(path: Path) -> ChainReport:
    """verify_journal, raising JournalTampered (naming each broken position) when the chain is broken."""
    report = verify_journal(path)
    if not report.ok:
        raise JournalTampered(path, report.problems)
    return report
