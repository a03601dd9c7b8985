"""A hash chain over a run's journal: every event carries the SHA-256 of the previous event's hash and
of its own content, so a rewritten, deleted or inserted event breaks the chain where it happened.

The append-only triggers stop a mistake, not the file's owner (who can drop them); the chain makes an
edit visible. An owner who rewrites an event and recomputes every later hash still leaves the head
changed: the summary records the head (seq and hash) when the run ends, and a site that must prove
a journal untouched keeps that head elsewhere too (its MES, syslog, a signed report).

Journals written before the chain have no hash in their rows; they read as before and `verify` says
they carry no chain (a resumed old run chains its new events from there).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from drivers.errors import WaferlineError

TAMPERED_EXIT = 6  # the CLI's exit code for a journal whose chain is broken (README "Exit codes")


class JournalTampered(WaferlineError):
    """A journal's hash chain or seq is broken: events were rewritten, deleted or inserted."""

    def __init__(self, path: object, problems: list[str]) -> None:
        more = f"\n  ... {len(problems) - 10} more" if len(problems) > 10 else ""
        shown = "\n  ".join(problems[:10]) + more
        super().__init__(f"journal {path} is not the one the sequencer wrote:\n  {shown}")
        self.problems = problems


def genesis(run_id: str) -> str:
    """The 'previous hash' of a run's first chained event."""
    return hashlib.sha256(f"waferline journal {run_id}".encode()).hexdigest()


def link(prev: str, seq: int, ts: str, run_id: str, kind: str, data: str) -> str:
    """One event's hash: over the previous hash and the event exactly as stored."""
    return hashlib.sha256(f"{prev}\n{seq}\t{ts}\t{run_id}\t{kind}\t{data}".encode()).hexdigest()


@dataclass
class ChainReport:
    events: int = 0
    unchained: int = 0  # events from before the chain (older journals)
    head_seq: int = 0
    head: str = ""
    problems: list[str] = field(default_factory=list)
    hashes: dict[int, str] = field(default_factory=dict)  # seq -> stored hash

    def check_head(self, seq: int, digest: str) -> str | None:
        """A head recorded earlier (the summary's, or a site's copy) must still be in the chain: a
        journal cut short after it, or rewritten up to it, no longer has it."""
        if seq > self.head_seq:
            return f"a head was recorded at seq {seq}, but the journal ends at seq {self.head_seq}: " \
                   "events at its end were deleted"
        if self.hashes.get(seq) != digest:
            return f"the head recorded at seq {seq} ({digest[:12]}) is not the journal's event {seq}"
        return None

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_rows(run_id: str, rows: list[tuple[int, str, str, str, str, str | None]]) -> ChainReport:
    """Check seq continuity and every hash; each problem names the event's position."""
    report = ChainReport(events=len(rows))
    prev, expected_seq = genesis(run_id), 1
    for seq, ts, rid, kind, data, stored in rows:
        if seq != expected_seq:
            report.problems.append(f"seq {expected_seq}-{seq - 1} missing before event {seq} ({kind}): "
                                   "events were deleted" if seq > expected_seq
                                   else f"event {seq} ({kind}) out of order after {expected_seq - 1}")
        expected_seq = seq + 1
        if rid != run_id:
            report.problems.append(f"event {seq} ({kind}) names run {rid}, not {run_id}")
        if stored is None:
            if report.head:  # a hole in the chain after it started
                report.problems.append(f"event {seq} ({kind}) has no hash inside the chain: inserted")
            report.unchained += 1
            continue
        want = link(prev, seq, ts, rid, kind, data)
        if stored != want:
            report.problems.append(f"event {seq} ({kind}) does not match its hash: rewritten, or an event "
                                   "before it was changed, inserted or deleted")
        prev = stored
        report.head_seq, report.head = seq, stored
        report.hashes[seq] = stored
    return report
