"""An emulated tool as GEM equipment (SEMI E30) over HSMS, served from its GEM profile.

State models: communication (DISABLED, NOT COMMUNICATING until an S1F13/F14 exchange, COMMUNICATING),
control (EQUIPMENT OFFLINE, HOST OFFLINE, ONLINE LOCAL/REMOTE; the operator's local/remote switch is
`remote`) and processing (the model's E30 state, coded by `enums.state`). Not communicating, the tool
answers everything but S1F13 with an abort (F0); off-line, everything but S1F13/F15/F17. On-line
local, a remote command other than the abort is refused with HCACK 2 (the operator has the tool).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from drivers.addresses import HsmsAddress
from drivers.profiles.hsms import HsmsProfile
from drivers.transports.gem_codes import ALCD_CATEGORY
from drivers.transports.gem_values import ValueMismatch, param_from_item, to_item
from drivers.transports.hsms import Unrecognised
from drivers.transports.secs2 import Item
from sim_tools.model import EmulatedTool
from sim_tools.servers.gem_commands import CommandHandlers, ack
from sim_tools.servers.gem_reports import ReportConfig, Snapshot, Trace, events_between, u4s
from sim_tools.servers.hsms import HsmsPassive, Reply

log = logging.getLogger(__name__)
STREAMS = (1, 2, 5, 6, 7, 10)
TRACE_FLOOR_S = 0.05  # wall seconds between trace samples at least, however fast the virtual clock


class GemToolServer:
    """Serves one EmulatedTool as GEM equipment on `address` (loopback)."""

    def __init__(self, tool: EmulatedTool, profile: HsmsProfile, address: HsmsAddress) -> None:
        self.tool, self.profile = tool, profile
        self.hsms = HsmsPassive(tool.name, address, tool.faults, self._handle, self._selected)
        self.comm_state = "DISABLED"
        self.control_state = profile.gem.initial_control.upper()
        self.remote = True  # the operator's local/remote switch
        self.reports = ReportConfig(profile)
        self.alarms_enabled: set[int] = set()
        self.ecs: dict[str, Any] = {n: v.default for n, v in profile.variables.items() if v.role == "ec"}
        self.traces: dict[int, Trace] = {}
        self.commands = CommandHandlers(self)
        self._by_vid = {v.vid: n for n, v in profile.variables.items()}
        self._last: Snapshot | None = None
        self._alarms_seen = len(tool.alarm_events)
        self._outbox: asyncio.Queue[tuple[int, int, Item]] = asyncio.Queue()
        self._sender: asyncio.Task[None] | None = None
        self._data_id = 0
        self.events_sent: list[str] = []
        self.terminal: list[str] = []  # S10F3 texts the host displayed on the tool
        self.own_values = {"clock", "control_state", *self.ecs}  # served here, not by the model

    # --- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> HsmsAddress:
        self.comm_state = "NOT_COMMUNICATING"
        self._last = self.tool.snapshot()
        self.tool.add_listener(self._on_change)
        self._sender = asyncio.get_running_loop().create_task(self._send_loop(), name=f"gem-{self.tool.name}")
        return await self.hsms.start()

    async def stop(self) -> None:
        self.tool.remove_listener(self._on_change)
        tasks = [t for t in (self._sender, *(tr.task for tr in self.traces.values())) if t is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        await self.hsms.stop()
        self.comm_state = "DISABLED"

    def _selected(self, on: bool) -> None:
        self.comm_state = "NOT_COMMUNICATING"
        if on:  # E30: the equipment also asks to establish communication
            self._outbox.put_nowait((1, 13, Item.list(Item.ascii(self.profile.gem.mdln),
                                                       Item.ascii(self.profile.gem.softrev))))

    # --- variables -----------------------------------------------------------------------------
    def value_of(self, name: str) -> Any:
        if name in self.ecs:
            return self.ecs[name]
        if name == "clock":
            return time.strftime("%Y%m%d%H%M%S00")
        if name == "control_state":
            return self.control_state
        return self.tool.snapshot()[name]

    def item_of(self, vid: int) -> Item:
        """The variable's value as its profile's format; an empty list for an unknown id (E5)."""
        name = self._by_vid.get(vid)
        if name is None:
            return Item.list()
        return to_item(self.profile, name, self.value_of(name))

    # --- messages from the host ----------------------------------------------------------------
    async def _handle(self, stream: int, function: int, item: Item | None) -> Reply | None:
        if stream not in STREAMS:
            raise Unrecognised(3)
        handler = self.commands.table.get((stream, function))
        if handler is None:
            raise Unrecognised(5)
        if self.comm_state != "COMMUNICATING" and (stream, function) != (1, 13):
            return 0, None  # E30: not communicating, abort the transaction
        offline = self.control_state in ("HOST_OFFLINE", "EQUIPMENT_OFFLINE")
        if offline and (stream, function) not in ((1, 13), (1, 15), (1, 17)):
            return 0, None
        try:
            return function + 1, await handler(item)
        except (ValueError, IndexError, TypeError, AttributeError, ValueMismatch) as exc:
            log.info("%s: S%dF%d malformed: %s", self.tool.name, stream, function, exc)
            raise Unrecognised(7) from None

    # --- what the tool reports -------------------------------------------------------------------
    def _on_change(self) -> None:
        now = self.tool.snapshot()
        interlocks = list(self.tool.interlocks)
        for name in events_between(self._last, now, interlocks):
            self._raise_event(name, now)
        self._last = now
        events = self.tool.alarm_events
        for event in events[self._alarms_seen:]:
            if event.alarm_id in self.alarms_enabled or not self.alarms_enabled:
                self._queue_alarm(event.alarm_id, event.set)
        self._alarms_seen = len(events)

    def _raise_event(self, name: str, now: Snapshot) -> None:
        event = self.profile.events.get(name)  # type: ignore[call-overload]
        if event is None or event.ceid not in self.reports.enabled or self.comm_state != "COMMUNICATING":
            return
        self._data_id += 1
        reports = []
        for rptid in self.reports.links.get(event.ceid, []):
            names = [self._by_vid[v] for v in self.reports.reports.get(rptid, [])]
            values = [to_item(self.profile, n, now[n] if n in now else self.value_of(n)) for n in names]
            reports.append(Item.list(Item.u4(rptid), Item.list(*values)))
        body = Item.list(Item.u4(self._data_id), Item.u4(event.ceid), Item.list(*reports))
        self.events_sent.append(name)
        self._outbox.put_nowait((6, 11, body))

    def _queue_alarm(self, alid: int, is_set: bool) -> None:
        if self.comm_state != "COMMUNICATING":
            return
        alcd = ALCD_CATEGORY[self.profile.alarm_class(alid)] | (0x80 if is_set else 0)
        text = self.profile.alarm_text(alid)[:120]
        self._outbox.put_nowait((5, 1, Item.list(ack(alcd), Item.u4(alid), Item.ascii(text))))

    async def _send_loop(self) -> None:
        """One primary at a time, in the order they happened; each waits T3 for its reply."""
        while True:
            stream, function, body = await self._outbox.get()
            if not self.hsms.selected:
                continue
            try:
                answer = await self.hsms.request(stream, function, body)
            except ConnectionError:
                continue
            if (stream, function) == (1, 13) and answer is not None and answer.format == "L":
                with_ack = answer.value[0] if answer.value else None
                if with_ack is not None and bytes(with_ack.value[:1]) == b"\x00":
                    self.comm_state = "COMMUNICATING"

    def send_trace(self, body: Item) -> Awaitable[Item | None]:
        return self.hsms.request(6, 1, body)

    def start_trace(self, trace: Trace) -> None:
        old = self.traces.pop(trace.trid, None)
        if old is not None and old.task is not None:
            old.task.cancel()
        wall = max(trace.period_s / self.tool.clock.time_scale, TRACE_FLOOR_S)
        sample: Callable[[list[int]], list[Item]] = lambda ids: [self.item_of(i) for i in ids]  # noqa: E731
        trace.task = asyncio.get_running_loop().create_task(
            trace.run(wall, sample, self.send_trace, lambda: str(self.value_of("clock"))))
        self.traces[trace.trid] = trace

    def stop_trace(self, trid: int) -> None:
        old = self.traces.pop(trid, None)
        if old is not None and old.task is not None:
            old.task.cancel()

    def decode_param(self, name: str, item: Item) -> Any:
        return param_from_item(self.profile, name, item)

    @staticmethod
    def ids(item: Item) -> list[int]:
        return u4s(item)
