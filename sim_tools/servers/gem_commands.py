"""The GEM messages an emulated tool answers: S1 (status, communication, control), S2 (constants, reports,
remote commands, traces), S5 (alarms), S7 (process programs), S10 (terminal). Each handler takes the
primary's item and returns the reply's; a shape that does not fit raises (the tool answers S9F7).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from drivers.transports.gem_values import ValueMismatch, to_item
from drivers.transports.secs2 import Item
from sim_tools.model import Refused
from sim_tools.servers.gem_reports import Trace

if TYPE_CHECKING:
    from sim_tools.servers.gem import GemToolServer

Handler = Callable[[Item | None], Awaitable[Item | None]]
MAX_PROGRAMS = 64


def ack(code: int) -> Item:
    return Item.binary(bytes([code]))


def _list(item: Item | None, size: int | None = None) -> list[Any]:
    if item is None or item.format != "L" or (size is not None and len(item.value) != size):
        raise ValueError(f"expected a list of {size}")
    return list(item.value)


class CommandHandlers:
    def __init__(self, server: GemToolServer) -> None:
        self.s = server
        self.programs: dict[str, str] = {}  # PPID -> body
        self.table: dict[tuple[int, int], Handler] = {
            (1, 1): self.are_you_there, (1, 3): self.status, (1, 11): self.sv_names,
            (1, 13): self.establish, (1, 15): self.offline, (1, 17): self.online,
            (2, 13): self.ec_values, (2, 15): self.ec_set, (2, 17): self.clock,
            (2, 23): self.trace, (2, 33): self.define, (2, 35): self.link, (2, 37): self.enable,
            (2, 41): self.remote_command,
            (5, 3): self.alarm_enable, (5, 5): self.alarm_list, (5, 7): self.alarms_enabled,
            (7, 3): self.pp_send, (7, 5): self.pp_request, (7, 17): self.pp_delete, (7, 19): self.pp_dir,
            (10, 3): self.terminal,
        }

    def _model(self) -> Item:
        g = self.s.profile.gem
        return Item.list(Item.ascii(g.mdln), Item.ascii(g.softrev))

    # --- S1 ------------------------------------------------------------------------------------
    async def are_you_there(self, _item: Item | None) -> Item:
        return self._model()

    async def status(self, item: Item | None) -> Item:
        ids = self.s.ids(item) if item is not None else []
        profile = self.s.profile
        ids = ids or [v.vid for v in profile.variables.values() if v.role == "sv"]
        names = [self.s._by_vid.get(i) for i in ids]
        model = [n for n in names if n is not None and n not in self.s.own_values]
        read = self.s.tool.read(model) if model else {}  # one snapshot, and the audit sees the read
        values = []
        for name in names:
            if name is None or profile.variables[name].role != "sv":
                values.append(Item.list())
            else:
                values.append(to_item(profile, name, read[name] if name in read else self.s.value_of(name)))
        return Item.list(*values)

    async def sv_names(self, item: Item | None) -> Item:
        ids = self.s.ids(item) if item is not None else []
        svs = {v.vid: (n, v.unit) for n, v in self.s.profile.variables.items() if v.role == "sv"}
        rows = [Item.list(Item.u4(i), *(Item.ascii(t) for t in svs.get(i, ("", ""))))
                for i in (ids or sorted(svs))]
        return Item.list(*rows)

    async def establish(self, _item: Item | None) -> Item:
        self.s.comm_state = "COMMUNICATING"
        return Item.list(ack(0), self._model())

    async def offline(self, _item: Item | None) -> Item:
        if self.s.control_state != "EQUIPMENT_OFFLINE":
            self.s.control_state = "HOST_OFFLINE"
        return ack(0)

    async def online(self, _item: Item | None) -> Item:
        if self.s.control_state == "EQUIPMENT_OFFLINE":
            return ack(1)
        if self.s.control_state.startswith("ONLINE"):
            return ack(2)
        self.s.control_state = "ONLINE_REMOTE" if self.s.remote else "ONLINE_LOCAL"
        return ack(0)

    # --- S2 ------------------------------------------------------------------------------------
    def _ec_name(self, ecid: int) -> str | None:
        name = self.s._by_vid.get(ecid)
        return name if name is not None and name in self.s.ecs else None

    async def ec_values(self, item: Item | None) -> Item:
        ids = self.s.ids(item) if item is not None else []
        ids = ids or [self.s.profile.variables[n].vid for n in self.s.ecs]
        return Item.list(*[self.s.item_of(i) if self._ec_name(i) else Item.list() for i in ids])

    async def ec_set(self, item: Item | None) -> Item:
        pairs = [(_list(p, 2)) for p in _list(item)]
        updates = {}
        for ecid, value in pairs:
            name = self._ec_name(int(ecid.scalar()))
            if name is None:
                return ack(1)
            try:
                updates[name] = self.s.decode_param(name, value)
            except ValueMismatch:
                return ack(3)
        self.s.ecs.update(updates)
        return ack(0)

    async def clock(self, _item: Item | None) -> Item:
        return Item.ascii(str(self.s.value_of("clock")))

    async def trace(self, item: Item | None) -> Item:
        body = _list(item, 5)
        known = {v.vid for v in self.s.profile.variables.values() if v.role == "sv"}
        trace, tiaack = Trace.parse(Item.list(*body), known)
        if tiaack == 0:
            if trace is None:
                self.s.stop_trace(int(body[0].scalar()))
            else:
                self.s.start_trace(trace)
        return ack(tiaack)

    async def define(self, item: Item | None) -> Item:
        _list(item, 2)
        assert item is not None
        return ack(self.s.reports.define(item))

    async def link(self, item: Item | None) -> Item:
        _list(item, 2)
        assert item is not None
        return ack(self.s.reports.link(item))

    async def enable(self, item: Item | None) -> Item:
        _list(item, 2)
        assert item is not None
        return ack(self.s.reports.enable(item))

    async def remote_command(self, item: Item | None) -> Item:
        rcmd_item, params_item = _list(item, 2)
        rcmd = str(rcmd_item.value)
        name = next((n for n, c in self.s.profile.commands.items() if c.rcmd == rcmd), None)
        if name is None:
            return Item.list(ack(1), Item.list())
        if self.s.control_state != "ONLINE_REMOTE" and name != "abort":
            return Item.list(ack(2), Item.list())
        cmd = self.s.profile.commands[name]
        ppid_param = self.s.profile.process_programs.ppid_param
        args: dict[str, Any] = {}
        bad: list[Item] = []
        cp_of = {}
        for pair in _list(params_item):
            cpname, cpval = (_list(pair, 2))
            cp = str(cpname.value)
            if cp == ppid_param and cmd.program:
                program = self.programs.get(str(cpval.value))
                if program is None:
                    bad.append(Item.list(Item.ascii(cp), ack(2)))
                    continue
                args |= self._parse_program(program, cmd.program)
                continue
            var = cmd.params.get(cp)
            if var is None:
                bad.append(Item.list(Item.ascii(cp), ack(1)))
                continue
            try:
                args[var] = self.s.decode_param(var, cpval)
                cp_of[var] = cp
            except ValueMismatch:
                bad.append(Item.list(Item.ascii(cp), ack(3)))
        if bad:
            return Item.list(ack(3), Item.list(*bad))
        try:
            self.s.tool.command(name, args)
        except Refused as exc:
            return self._refused(exc, cp_of)
        return Item.list(ack(0), Item.list())

    def _parse_program(self, body: str, fields: list[str]) -> dict[str, Any]:
        args: dict[str, Any] = {}
        for line in body.splitlines():
            key, _, text = line.partition("=")
            if key in fields:
                spec = self.s.profile.variables[key]
                args[key] = (float(text) if spec.format in ("F4", "F8") else text if spec.format == "A" or
                             spec.enum else text == "True" if spec.format == "BOOLEAN" else int(text))
        return args

    def _refused(self, exc: Refused, cp_of: dict[str, str]) -> Item:
        """The model's refusal as HCACK: a bad job id or recipe value is a parameter (3) with a CPACK 2
        on it; busy, an alarm or an open interlock is `cannot perform now` (2)."""
        if exc.code in (5, 6):
            field = "job_id" if exc.code == 5 else (re.findall(r"recipe ([a-z_0-9]+)", exc.text) or [""])[0]
            cp = cp_of.get(field, field.upper() or "RECIPE")
            return Item.list(ack(3), Item.list(Item.list(Item.ascii(cp), ack(2))))
        return Item.list(ack(2), Item.list())

    # --- S5 ------------------------------------------------------------------------------------
    async def alarm_enable(self, item: Item | None) -> Item:
        aled, alid = _list(item, 2)
        ids = self.s.ids(alid) or sorted(self.s.profile.alarms)
        on = bool(aled.value[0] & 0x80)
        (self.s.alarms_enabled.update if on else self.s.alarms_enabled.difference_update)(ids)
        return ack(0)

    def _alarm_row(self, alid: int) -> Item:
        active = self.s.tool.alarm_id == alid
        code = {"safety": 1, "process": 4, "warning": 6}[self.s.profile.alarm_class(alid)]
        return Item.list(ack(code | (0x80 if active else 0)), Item.u4(alid),
                         Item.ascii(self.s.profile.alarm_text(alid)[:120]))

    async def alarm_list(self, item: Item | None) -> Item:
        ids = self.s.ids(item) if item is not None else []
        return Item.list(*[self._alarm_row(a) for a in (ids or sorted(self.s.profile.alarms))])

    async def alarms_enabled(self, _item: Item | None) -> Item:
        return Item.list(*[self._alarm_row(a) for a in sorted(self.s.alarms_enabled)])

    # --- S7 ------------------------------------------------------------------------------------
    async def pp_send(self, item: Item | None) -> Item:
        ppid, body = _list(item, 2)
        text = body.value.decode("latin-1") if body.format == "B" else str(body.value)
        if len(text) > self.s.profile.process_programs.max_body_bytes:
            return ack(2)
        if str(ppid.value) not in self.programs and len(self.programs) >= MAX_PROGRAMS:
            self.programs.pop(next(iter(self.programs)))  # the oldest program makes room
        self.programs[str(ppid.value)] = text
        return ack(0)

    async def pp_request(self, item: Item | None) -> Item:
        ppid = str(item.value) if item is not None else ""
        body = self.programs.get(ppid)
        return Item.list() if body is None else Item.list(Item.ascii(ppid), Item.ascii(body))

    async def pp_delete(self, item: Item | None) -> Item:
        ids = [str(i.value) for i in _list(item)] or list(self.programs)
        if any(i not in self.programs for i in ids):
            return ack(4)
        for ppid in ids:
            del self.programs[ppid]
        return ack(0)

    async def pp_dir(self, _item: Item | None) -> Item:
        return Item.list(*[Item.ascii(p) for p in self.programs])

    # --- S10 -----------------------------------------------------------------------------------
    async def terminal(self, item: Item | None) -> Item:
        _tid, text = _list(item, 2)
        self.s.terminal.append(str(text.value))
        return ack(0)
