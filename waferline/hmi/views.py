"""What the HMI shows, gathered once for every browser: the line's tools and the runs, as JSON.

One watcher task reads the tools (through the sequencer that owns a tool's link while a run holds it,
else directly) and the runs' journals; browsers get the shared snapshot, so fifty browsers cost what
one does. A run's state is rebuilt from its journal alone, so the HMI shows a run started from the
CLI, and after a controller restart "controller not running" with the last journaled state.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from drivers.errors import WaferlineError
from drivers.line import LineConfig, ToolConfig
from sequencer.reports.data import short_id
from sequencer.run.journal import JournalError, read_events
from sequencer.run.rundir import JOURNAL, SUMMARY, list_runs, live_pid, runs_dir
from sequencer.run.state import rebuild
from waferline.hmi.alarms import AlarmBook
from waferline.hmi.metrics import Reads
from waferline.hmi.stamps import journal_stamp
from waferline.owners import running_owners
from waferline.tools_cmd import query_line

log = logging.getLogger(__name__)
MAX_RUNS = 50
# the interlock and alarm history of a run page: what held it, what was bypassed, who did what
HISTORY = ("state", "interlock_tripped", "alarm", "bypass", "bypass_used", "permissive_refused",
           "step_failed", "result_rejected", "tool_abort", "tool_command", "stack_scrapped")


def run_summary(run_id: str) -> dict[str, Any]:
    """One run for the runs list: from its summary when it ended, else from its journal."""
    directory = runs_dir() / run_id
    alive = live_pid(directory) is not None
    out: dict[str, Any] = {"id": run_id, "controller": "running" if alive else "not running"}
    try:
        summary = json.loads((directory / SUMMARY).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        summary = None
    if isinstance(summary, dict) and not alive:
        out |= {"flow": summary.get("flow"), "state": summary.get("state"),
                "held_reason": summary.get("held_reason"), "claims_ok": summary.get("claims_ok")}
        return out
    try:
        snap = rebuild(directory / JOURNAL)
    except (JournalError, OSError, WaferlineError) as exc:
        return out | {"state": "UNREADABLE", "held_reason": str(exc)}
    active = {s.tool: s.uid for s in snap.steps.values() if s.status == "started" and s.tool}
    return out | {"flow": snap.flow, "state": snap.state.value, "held_reason": snap.held_reason,
                  "claims_ok": None, "active": active}


_DETAILS: dict[str, tuple[float, int, bool, str]] = {}  # run id -> (monotonic s, journal, alive, JSON)
DETAIL_MAX_AGE_S = 0.5


def run_detail_json(run_id: str, build: bool = False) -> str | None:
    """A run's page data as JSON, rebuilt at most every 0.5 s and only when its journal changed: many
    browsers on one run's page cost one rebuild and one encoding. Without `build`, only what is
    cached and fresh (None otherwise: the caller builds it off the event loop)."""
    alive = live_pid(runs_dir() / run_id) is not None  # a controller that died changes no journal
    stamp = journal_stamp(run_id)
    now = time.monotonic()
    cached = _DETAILS.get(run_id)
    fresh = cached is not None and (cached[1] == stamp or now - cached[0] < DETAIL_MAX_AGE_S)
    if cached is not None and fresh and cached[2] == alive:
        return cached[3]
    if not build:
        return None
    detail = run_detail(run_id)
    if detail is None:
        return None
    text = json.dumps(detail)
    if len(_DETAILS) > MAX_RUNS:
        _DETAILS.clear()
    _DETAILS[run_id] = (now, stamp, alive, text)
    return text


def run_detail(run_id: str) -> dict[str, Any] | None:
    """Everything a run's page shows; None if there is no such run."""
    directory = runs_dir() / run_id
    if run_id not in list_runs():
        return None
    snap = rebuild(directory / JOURNAL)
    steps = sorted(snap.steps.values(), key=lambda s: s.seq)
    planned: list[str] = []
    history: list[dict[str, Any]] = []
    for ev in read_events(directory / JOURNAL):
        if ev.kind == "run_created":
            planned = list(ev.data.get("steps") or [])
        if ev.kind in HISTORY:
            history.append({"seq": ev.seq, "ts": ev.ts, "kind": ev.kind, "data": ev.data})
    done = sum(1 for s in steps if s.status in ("completed", "recovered"))
    summary_path = directory / SUMMARY
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else None
    return {
        "id": run_id, "flow": snap.flow, "wafers": snap.wafers, "line": snap.line,
        "state": snap.state.value, "held_reason": snap.held_reason,
        "controller": "running" if live_pid(directory) is not None else "not running",
        "stacks": snap.stacks or [snap.stack_id], "scrapped": snap.scrapped,
        "progress": {"done": done, "planned": len(planned) or len(steps)},
        "steps": [{"uid": s.uid, "status": s.status, "tool": s.tool, "kind": s.kind, "job_id": s.job_id,
                   "reason": s.reason} for s in steps],
        "bypasses": [b.model_dump() for b in snap.bypasses],
        "history": history[-200:],
        "claims": (summary or {}).get("claims"),
        "claims_ok": (summary or {}).get("claims_ok"),
        "report": (directory / "report" / "index.html").exists(),
        "travelers": [short_id(run_id, sid) for sid in (snap.stacks or [snap.stack_id])]
        if snap.traveler is not None else [],
    }


class Watcher:
    """Refreshes the shared snapshot every `period_s` while anyone looks; `version` counts changes."""

    def __init__(self, line: LineConfig, *, served: bool = True, period_s: float = 0.5,
                 idle_period_s: float = 5.0, alarms: AlarmBook | None = None) -> None:
        self.line = line
        self.alarms = alarms
        self.reads = Reads()
        self.served = served
        self.period_s = period_s
        self.idle_period_s = idle_period_s  # tools no run holds: each query opens its own link
        self._idle: dict[str, tuple[float, dict[str, Any]]] = {}
        self.snapshot: dict[str, Any] = {"tools": [], "runs": [], "at": 0.0}
        self.parts: dict[str, tuple[int, str]] = {}  # topic -> (version it last changed in, its JSON)
        self.version = 0
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="hmi-watcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _loop(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception:  # the HMI stays up whatever one refresh met
                log.exception("HMI refresh failed")
            await asyncio.sleep(self.period_s)

    async def refresh(self) -> None:
        owners = await running_owners()
        tools = await self._tools(owners)
        runs = [run_summary(r) for r in list_runs()[-MAX_RUNS:]][::-1]
        tools = [{k: v for k, v in r.items() if k not in ("run", "step")} for r in tools]  # fresh rows
        for row in tools:  # the step a run has on the tool now
            for run in runs:
                if row["name"] in (run.get("active") or {}):
                    row["run"], row["step"] = run["id"], run["active"][row["name"]]
        new: dict[str, Any] = {"tools": tools, "runs": runs}
        if self.alarms is not None:
            self.alarms.update(tools)
            new["alarms"] = self.alarms.view()
        changed = [k for k in new if new[k] != self.snapshot.get(k)]
        if changed:
            self.version += 1
            self.snapshot = new | {"at": time.time()}
            for topic in changed:  # encoded once per change, whatever the number of browsers
                self.parts[topic] = (self.version, json.dumps(new[topic]))
            async with self._changed:
                self._changed.notify_all()

    async def _tools(self, owners: dict[str, Path]) -> list[dict[str, Any]]:
        """Held tools through their run every refresh; the others every idle period (a serial port or an
        RTU line can have one client only, so the HMI never keeps a link of its own open)."""
        now = time.monotonic()
        due = [t for t in self.line.tools if t.name in owners or (
            self.served and now - self._idle.get(t.name, (-1e9, {}))[0] >= self.idle_period_s)]
        rows = {r["name"]: r for r in await asyncio.gather(*(self._read(t, owners) for t in due))}
        for t in self.line.tools:
            if t.name in rows and t.name not in owners:
                self._idle[t.name] = (now, rows[t.name])
        out = []
        for t in self.line.tools:
            row = rows.get(t.name) or self._idle.get(t.name, (0, None))[1]
            if row is None:
                row = {"name": t.name, "kind": t.kind, "transport": t.address.transport, "ok": False,
                       "error": "not served: no `waferline sim up` of this line and no run holds it"}
            out.append(row)
        return out

    async def _read(self, tool: ToolConfig, owners: dict[str, Path]) -> dict[str, Any]:
        t0 = time.perf_counter()
        row = (await query_line(self.line.model_copy(update={"tools": [tool]}), owners))[0]
        self.reads.add(tool.address.transport, time.perf_counter() - t0, bool(row.get("ok")))
        return row

    def message(self, topics: tuple[str, ...], sent: dict[str, int]) -> str | None:
        """The SSE data for the subscribed topics that changed since `sent` (updated), or None."""
        fresh = [(t, self.parts[t]) for t in topics if t in self.parts and self.parts[t][0] > sent.get(t, 0)]
        if not fresh:
            return None
        for topic, (version, _) in fresh:
            sent[topic] = version
        body = ", ".join(f'"{topic}": {text}' for topic, (_, text) in fresh)
        return f'{{"at": {self.snapshot["at"]}, {body}}}'

    async def changes(self, seen: int, heartbeat_s: float = 15.0) -> AsyncIterator[int]:
        """Yield the version whenever it moves past `seen` (and at least every heartbeat)."""
        while True:
            if self.version != seen:
                seen = self.version
                yield seen
                continue
            async with self._changed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), heartbeat_s)
            if self.version == seen:
                yield -1  # a heartbeat


def report_file(run_id: str, name: str) -> Path | None:
    """A file of the run's report directory, never outside it."""
    if run_id not in list_runs():
        return None
    base = (runs_dir() / run_id / "report").resolve()
    path = (base / name).resolve()
    return path if path.is_file() and base in path.parents else None
