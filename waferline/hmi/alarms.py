"""Tool alarms with ISA-18.2 states, as the HMI tracks them from the tools' status.

An alarm is one (tool, ALID) occurrence: raised when a tool shows it, cleared when the tool no longer
does. Its state is the pair ISA-18.2 uses: unacknowledged or acknowledged, active or cleared; an
acknowledged alarm that has cleared returns to normal and moves to the recent list. An alarm may be
shelved until an expiry (at most one shift), which takes it off the operator's attention list, never
off the record; a safety alarm cannot be shelved. Every acknowledgement and shelving is journaled
with the user and role in the HMI's own journal (the same hash-chained journal a run keeps).
"""

from __future__ import annotations

import datetime as dt
import time
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from sequencer.run.events import AlarmAction
from sequencer.run.journal import Journal

MAX_RECENT = 200
MAX_SHELF_MIN = 480.0


@dataclass
class AlarmRecord:
    key: str  # "<tool>:<alid>:<n>": the n-th occurrence of this alarm on this tool
    tool: str
    alarm_id: int
    text: str
    alarm_class: str
    raised: float
    active: bool = True
    cleared: float | None = None
    acked_by: str | None = None
    acked: float | None = None
    shelved_until: float | None = None
    shelved_by: str | None = None

    @property
    def state(self) -> str:
        """ISA-18.2: UNACK_ACTIVE, ACK_ACTIVE, UNACK_CLEARED (return to normal unacknowledged), NORMAL,
        or SHELVED while a shelf has not expired."""
        if self.shelved_until is not None and time.time() < self.shelved_until:
            return "SHELVED"
        if self.acked is None:
            return "UNACK_ACTIVE" if self.active else "UNACK_CLEARED"
        return "ACK_ACTIVE" if self.active else "NORMAL"

    def view(self) -> dict[str, Any]:
        return asdict(self) | {"state": self.state}


class AlarmError(Exception):
    """An alarm action that is not allowed (the HTTP layer answers 404 or 409 with the text)."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status


class AlarmBook:
    def __init__(self, journal_path: Path, line: str) -> None:
        journal_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.journal = Journal(journal_path, f"hmi-{line}")
        self.open: dict[str, AlarmRecord] = {}  # not yet back to normal
        self.recent: deque[AlarmRecord] = deque(maxlen=MAX_RECENT)
        self._count: dict[tuple[str, int], int] = {}

    def close(self) -> None:
        self.journal.close()

    def update(self, tools: list[dict[str, Any]]) -> None:
        """Fold one snapshot of the tools' status in: raise new alarms, clear those no longer shown."""
        shown: dict[tuple[str, int], dict[str, Any]] = {}
        for tool in tools:
            alarm = (tool.get("status") or {}).get("alarm") if tool.get("ok") else None
            if alarm:
                shown[(tool["name"], int(alarm["id"]))] = alarm
        now = time.time()
        for record in self.open.values():
            active = (record.tool, record.alarm_id) in shown
            if record.active and not active:
                record.active, record.cleared = False, now
        live = {(r.tool, r.alarm_id) for r in self.open.values() if r.active}
        for (name, alid), alarm in shown.items():
            if (name, alid) not in live:
                n = self._count[(name, alid)] = self._count.get((name, alid), 0) + 1
                key = f"{name}:{alid}:{n}"
                self.open[key] = AlarmRecord(key, name, alid, str(alarm.get("text", "")),
                                             str(alarm.get("alarm_class", "process")), now)
        self._retire()

    def _retire(self) -> None:
        for key in [k for k, r in self.open.items() if r.state == "NORMAL"]:
            self.recent.appendleft(self.open.pop(key))

    def find(self, key: str) -> AlarmRecord:
        record = self.open.get(key)
        if record is None:
            raise AlarmError(404, f"no open alarm {key!r} (already back to normal, or never raised)")
        return record

    def acknowledge(self, key: str, who: str, role: str, reason: str = "") -> AlarmRecord:
        record = self.find(key)
        if record.acked is not None:
            raise AlarmError(409, f"alarm {key} was acknowledged by {record.acked_by}")
        self._journal("acknowledge", record, who, role, reason)
        record.acked, record.acked_by = time.time(), who
        self._retire()
        return record

    def shelve(self, key: str, who: str, role: str, minutes: float, reason: str) -> AlarmRecord:
        record = self.find(key)
        if record.alarm_class == "safety":
            raise AlarmError(409, f"alarm {key} is a safety alarm: it cannot be shelved")
        if not 0 < minutes <= MAX_SHELF_MIN or not reason.strip():
            raise AlarmError(422, f"a shelf needs a reason and 0-{MAX_SHELF_MIN:g} minutes (it expires)")
        until = time.time() + minutes * 60
        self._journal("shelve", record, who, role, reason, until)
        record.shelved_until, record.shelved_by = until, who
        return record

    def _journal(self, action: Literal["acknowledge", "shelve"], r: AlarmRecord, who: str, role: str,
                 reason: str, until: float | None = None) -> None:
        stamp = dt.datetime.fromtimestamp(until, dt.UTC).isoformat() if until is not None else None
        self.journal.append(AlarmAction(action=action, tool=r.tool, alarm_id=r.alarm_id,
                                        text=r.text, alarm_class=r.alarm_class, who=who, role=role,
                                        reason=reason, until=stamp))

    def view(self) -> dict[str, Any]:
        order = sorted(self.open.values(), key=lambda r: (r.state == "SHELVED", -r.raised))
        return {"active": [r.view() for r in order], "recent": [r.view() for r in self.recent]}
