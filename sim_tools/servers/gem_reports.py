"""The host-defined side of an emulated GEM tool: reports, event links and enables (S2F33/35/37), the
collection events the tool's changes raise (S6F11), and traces (S2F23 -> S6F1).

Definitions live on the tool, not on the connection: a host that reconnects finds what it defined
(E30 keeps them in non-volatile storage); the driver deletes and redefines them anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from drivers.profiles.hsms import HsmsProfile
from drivers.transports.gem_codes import parse_dsper
from drivers.transports.secs2 import Item

Snapshot = dict[str, Any]
TERMINAL = ("COMPLETED", "ABORTED", "FAILED")


def u4s(item: Item) -> list[int]:
    """The ids of a U4/U2/.. item or of a list of one-value items (hosts send either)."""
    if item.format == "L":
        return [int(i.scalar()) for i in item.value]
    if item.format in ("A", "J", "BOOLEAN", "B"):
        raise ValueError(f"ids as {item.format}")
    return [int(v) for v in item.value]


class ReportConfig:
    """DRACK/LRACK/ERACK semantics of E30's dynamic event report configuration."""

    def __init__(self, profile: HsmsProfile) -> None:
        self.vids = {v.vid for v in profile.variables.values() if v.role != "ec"}
        self.ceids = {e.ceid for e in profile.events.values()}
        self.reports: dict[int, list[int]] = {}  # RPTID -> VIDs
        self.links: dict[int, list[int]] = {}  # CEID -> RPTIDs
        self.enabled: set[int] = set()

    def define(self, body: Item) -> int:
        """S2F33 L[DATAID, L[L[RPTID, L[VID...]]...]] -> DRACK."""
        entries = body.value[1].value
        if not entries:  # delete every report, and with them every link
            self.reports.clear()
            self.links.clear()
            return 0
        parsed = [(int(e.value[0].scalar()), u4s(e.value[1])) for e in entries]
        for rptid, vids in parsed:
            if vids and rptid in self.reports:
                return 3
            if any(v not in self.vids for v in vids):
                return 4
        for rptid, vids in parsed:
            if vids:
                self.reports[rptid] = vids
            else:
                self.reports.pop(rptid, None)
                for linked in self.links.values():
                    with contextlib.suppress(ValueError):
                        linked.remove(rptid)
        return 0

    def link(self, body: Item) -> int:
        """S2F35 L[DATAID, L[L[CEID, L[RPTID...]]...]] -> LRACK."""
        parsed = [(int(e.value[0].scalar()), u4s(e.value[1])) for e in body.value[1].value]
        for ceid, rptids in parsed:
            if ceid not in self.ceids:
                return 4
            if any(r not in self.reports for r in rptids):
                return 5
            if rptids and self.links.get(ceid):
                return 3
        for ceid, rptids in parsed:
            if rptids:
                self.links[ceid] = rptids
            else:
                self.links.pop(ceid, None)
        return 0

    def enable(self, body: Item) -> int:
        """S2F37 L[CEED, L[CEID...]] -> ERACK; an empty list means every CEID."""
        on = bool(body.value[0].value[0])
        ceids = u4s(body.value[1]) or sorted(self.ceids)
        if any(c not in self.ceids for c in ceids):
            return 1
        (self.enabled.update if on else self.enabled.difference_update)(ceids)
        return 0


def events_between(before: Snapshot | None, now: Snapshot, interlocks: list[str]) -> list[str]:
    """The collection events a change of the tool's status raises, in the order they happened."""
    if before is None:
        return []
    out = []
    started = now["job_outcome"] == "RUNNING" and (before["job_outcome"] != "RUNNING"
                                                   or before["job_id"] != now["job_id"])
    if started:
        out.append("job_started")
    if now["state"] != before["state"]:
        out.append("state_changed")
    if now["alarm_id"] != before["alarm_id"]:
        out.append("alarm_changed")
    if any(now[n] != before[n] for n in interlocks):
        out.append("interlock_changed")
    ended = now["job_outcome"] in TERMINAL and (before["job_outcome"] != now["job_outcome"]
                                                 or before["job_id"] != now["job_id"])
    if ended:
        out.append("job_ended")
    return out


class Trace:
    """One S2F23 trace: sample the SVIDs every period, send S6F1 per REPGSZ samples, TOTSMP in all."""

    def __init__(self, trid: int, period_s: float, total: int, group: int, svids: list[int]) -> None:
        self.trid, self.period_s, self.total, self.group, self.svids = trid, period_s, total, group, svids
        self.task: asyncio.Task[None] | None = None

    @staticmethod
    def parse(body: Item, known: set[int]) -> tuple[Trace | None, int]:
        """(trace, TIAACK); a TOTSMP of 0 stops the trace (trace None, TIAACK 0)."""
        trid, dsper, totsmp, repgsz, svids = body.value
        try:
            period = parse_dsper(str(dsper.value))
        except ValueError:
            return None, 3
        ids = u4s(svids)
        if any(i not in known for i in ids):
            return None, 4
        total, group = int(totsmp.scalar()), int(repgsz.scalar())
        if total == 0:
            return None, 0
        if group < 1:
            return None, 5
        if period <= 0 or len(ids) > 64:
            return None, 3 if period <= 0 else 1
        return Trace(int(trid.scalar()), period, total, group, ids), 0

    async def run(self, wall_period_s: float, sample: Callable[[list[int]], list[Item]],
                  send: Callable[[Item], Any], clock: Callable[[], str]) -> None:
        taken, batch = 0, []
        while taken < self.total:
            await asyncio.sleep(wall_period_s)
            batch.extend(sample(self.svids))
            taken += 1
            if taken % self.group == 0 or taken == self.total:
                stime = Item.ascii(clock())
                await send(Item.list(Item.u4(self.trid), Item.u4(taken), stime, Item.list(*batch)))
                batch = []
