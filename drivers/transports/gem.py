"""GEM host channel: a tool's variables, commands and events over HSMS, as its GEM profile says.

Connecting is E30's order: HSMS select, establish communication (S1F13/F14), ask for online
(S1F17/F18), enable alarm reports (S5F3), then, if the profile has events, define reports and link
and enable them (S2F33/F35/F37, after deleting the tool's old ones), and start a trace of the process
values (S2F23) if the profile sets a period. A status read is one S1F3; a command one S2F41, after an
S7F3 when it sends a process program. The tool's S6F11 event reports, S5F1 alarms and S6F1 trace
samples are acknowledged at once and bump `generation`, so a job waiting for its end wakes up on the
event instead of at its next poll. Every negative acknowledgement is a typed error naming its code.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

from drivers.addresses import HsmsAddress
from drivers.channel import Channel, Timeouts
from drivers.errors import CommandRejected, ProtocolError, ToolConnectionError, ToolError, ToolOffline
from drivers.profiles.base import Value
from drivers.profiles.hsms import HsmsProfile
from drivers.transports.gem_codes import (
    ACKC7,
    CPACK,
    DRACK,
    ERACK,
    HCACK,
    LRACK,
    ONLACK,
    TIAACK,
    ack_code,
    dsper,
    parse_alarm,
    parse_event,
)
from drivers.transports.gem_values import ValueMismatch, from_item, to_item, to_text_item
from drivers.transports.hsms import HsmsLink, Unrecognised
from drivers.transports.secs2 import Item

OK_HCACK = (0, 4)  # done, or accepted and finished later
ACK_OK = Item.binary(b"\x00")
TOTSMP_MAX = 2**32 - 1  # a trace for as long as the link lives (TOTSMP 0 would stop it)


class HsmsChannel(Channel):
    transport = "hsms"

    def __init__(self, tool: str, profile: HsmsProfile, address: HsmsAddress,
                 timeouts: Timeouts | None = None) -> None:
        timeouts = timeouts or Timeouts()
        t3 = address.timers.t3  # a command may take two transactions (S7F3, S2F41), each within T3
        super().__init__(tool, profile, timeouts.model_copy(update={"request_s": max(timeouts.request_s,
                                                                                     2 * t3 + 0.5)}))
        self.gem = profile
        self.address = address
        self._link: HsmsLink | None = None
        self.identity: tuple[str, str] | None = None  # (MDLN, SOFTREV) the tool reported
        self.generation = 0  # bumped by every event report, alarm report and trace sample
        self._changed = asyncio.Event()
        self._reported: dict[str, Value] = {}  # DVs (and SVs) as the last event report carried them
        self._rptid_vars = {e.rptid: e.variables for e in profile.events.values()}
        self._ceid_name = {e.ceid: n for n, e in profile.events.items()}
        self.events_received: dict[str, int] = {}
        self.alarm_reports: deque[tuple[float, int, bool, str]] = deque(maxlen=1000)
        self.samples: deque[tuple[float, dict[str, Value]]] = deque(maxlen=10_000)
        self._trace_vars = [n for n in self._kind_process_values() if n in profile.variables]

    def _kind_process_values(self) -> list[str]:
        from drivers.kinds import KINDS  # the channel knows its kind only by the profile

        kind = KINDS.get(self.gem.kind)
        return list(kind.process_values) if kind is not None else []

    # --- link --------------------------------------------------------------------------------
    async def _open(self) -> None:
        a = self.address
        link = HsmsLink(self.tool, a.host, a.port, session=a.session, timers=a.timers,
                        on_message=self._on_message)
        self._link = link
        await link.open()
        try:
            await self._establish(link)
        except (ToolError, ValueError) as exc:
            if isinstance(exc, ToolOffline):
                raise
            reason = exc.reason if isinstance(exc, ToolError) else str(exc)
            raise ToolConnectionError(self.tool, f"GEM start-up: {reason}") from exc

    async def _establish(self, link: HsmsLink) -> None:
        reply = _list(await link.request(1, 13, Item.list()), 2, "S1F14")
        if ack_code(reply[0]) != 0:
            raise ToolConnectionError(self.tool, f"S1F13: the tool denied communication (COMMACK "
                                                 f"{ack_code(reply[0])})")
        model = reply[1].value if reply[1].format == "L" else []
        if len(model) == 2:
            self.identity = (str(model[0].value), str(model[1].value))
        onlack = ack_code(await link.request(1, 17))
        if onlack not in (0, 2):
            why = f"ONLACK {onlack}: {ONLACK.get(onlack, '?')}"
            raise ToolOffline(self.tool, f"S1F17: online refused ({why}); is the tool switched to "
                                         "equipment offline?")
        await self._enable_alarms(link)
        if self.address.events and self.gem.events:
            await self._define_reports(link)
        if self.gem.gem.trace_period_s and self._trace_vars:
            await self._start_trace(link)

    async def _enable_alarms(self, link: HsmsLink) -> None:
        """S5F3 per ALID of the profile (some tools take no zero-length "all"). A tool that refuses
        still shows its alarm in the alarm_id status variable: the refusal is logged, not fatal."""
        for alid in self.gem.alarms:
            try:
                code = ack_code(await link.request(5, 3, Item.list(Item.binary(b"\x80"), Item.u4(alid))))
            except (CommandRejected, ProtocolError, ValueError) as exc:
                code, why = -1, str(exc)
            else:
                why = f"ACKC5 {code}"
            if code != 0:
                self.log.warning("S5F3: alarm %d not enabled (%s): its reports will not come, its "
                                 "status will", alid, why)

    async def _define_reports(self, link: HsmsLink) -> None:
        events = self.gem.events.values()
        check = self._check_ack
        check("S2F37", ERACK, await link.request(2, 37, Item.list(Item("BOOLEAN", [False]), Item.list())))
        check("S2F33", DRACK, await link.request(2, 33, Item.list(Item.u4(0), Item.list())))
        reports = [Item.list(Item.u4(e.rptid), Item.list(*[Item.u4(self.gem.variables[v].vid)
                                                            for v in e.variables])) for e in events]
        check("S2F33", DRACK, await link.request(2, 33, Item.list(Item.u4(1), Item.list(*reports))))
        links = [Item.list(Item.u4(e.ceid), Item.list(Item.u4(e.rptid))) for e in events]
        check("S2F35", LRACK, await link.request(2, 35, Item.list(Item.u4(2), Item.list(*links))))
        ceids = _u4_list([e.ceid for e in events])
        check("S2F37", ERACK, await link.request(2, 37, Item.list(Item("BOOLEAN", [True]), ceids)))

    async def _start_trace(self, link: HsmsLink) -> None:
        g = self.gem.gem
        svids = Item.list(*[Item.u4(self.gem.variables[n].vid) for n in self._trace_vars])
        body = Item.list(Item.u4(g.trid), Item.ascii(dsper(g.trace_period_s)), Item.u4(TOTSMP_MAX),
                         Item.u4(1), svids)
        self._check_ack("S2F23", TIAACK, await link.request(2, 23, body))

    def _check_ack(self, what: str, texts: dict[int, str], item: Item | None) -> None:
        code = ack_code(item)  # ValueError for a malformed one: _open makes it a connection error
        if code != 0:
            raise CommandRejected(self.tool, f"{what} refused: code {code} ({texts.get(code, 'unknown')})")

    async def _shutdown(self) -> None:
        link, self._link = self._link, None
        if link is not None:
            await link.close()

    def _linked(self) -> HsmsLink:
        if self._link is None:
            raise ToolConnectionError(self.tool, "HSMS channel not connected")
        return self._link

    # --- what the tool sends ------------------------------------------------------------------
    async def _on_message(self, stream: int, function: int, item: Item | None) -> Item | None:
        if (stream, function) == (1, 1):
            return Item.list()  # S1F2 from a host: an empty list
        if (stream, function) == (1, 13):
            return Item.list(Item.binary(b"\x00"), Item.list())
        try:
            if (stream, function) == (6, 11):
                self._on_event(item)
            elif (stream, function) == (5, 1):
                alid, is_set, text = parse_alarm(item)
                self.alarm_reports.append((time.time(), alid, is_set, text))
                self.log.info("S5F1 alarm %d %s: %s", alid, "set" if is_set else "cleared", text)
            elif (stream, function) == (6, 1):
                self._on_trace(item)
            elif (stream, function) == (10, 1):
                self.log.info("S10F1 terminal message: %s", _list(item, 2, "S10F1")[1].value)
            elif stream == 9:
                self.log.warning("the tool answered S9F%d to one of our messages", function)
                return None
            else:
                raise Unrecognised(3 if stream not in (1, 2, 5, 6, 7, 10) else 5)
        except (ValueError, IndexError, TypeError, AttributeError, ValueMismatch):
            raise Unrecognised(7) from None
        self._bump()
        return ACK_OK

    def _on_event(self, item: Item | None) -> None:
        ceid, reports = parse_event(item)
        for rptid, values in reports:
            names = self._rptid_vars.get(rptid, [])
            if len(names) != len(values):
                raise ValueError(f"report {rptid}: {len(values)} values for {len(names)} variables")
            for name, value in zip(names, values, strict=True):
                self._reported[name] = from_item(self.gem, name, value)
        event = self._ceid_name.get(ceid, str(ceid))
        self.events_received[event] = self.events_received.get(event, 0) + 1

    def _on_trace(self, item: Item | None) -> None:
        body = _list(item, 4, "S6F1")
        values = body[3].value
        per = len(self._trace_vars)
        for i in range(0, len(values) - per + 1, max(per, 1)):
            sample = {n: from_item(self.gem, n, v) for n, v in zip(self._trace_vars, values[i:i + per],
                                                                     strict=True)}
            self.samples.append((time.time(), sample))

    def _bump(self) -> None:
        self.generation += 1
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_change(self, seen: int, timeout_s: float) -> None:
        if self.generation != seen:
            return
        try:
            async with asyncio.timeout(timeout_s):
                await self._changed.wait()
        except TimeoutError:
            pass

    # --- requests -----------------------------------------------------------------------------
    async def _read(self, names: Sequence[str]) -> dict[str, Value]:
        link, profile = self._linked(), self.gem
        out: dict[str, Value] = {}
        for role, (stream, function) in (("sv", (1, 3)), ("ec", (2, 13))):
            wanted = profile.by_role(list(names), role)
            if not wanted:
                continue
            ids = _u4_list([profile.variables[n].vid for n in wanted])
            what = f"S{stream}F{function + 1}"
            reply = await link.request(stream, function, ids)
            try:
                values = _list(reply, len(wanted), what)
                out |= {n: from_item(profile, n, v) for n, v in zip(wanted, values, strict=True)}
            except ValueMismatch as exc:
                raise ProtocolError(self.tool, f"{what}: {exc}") from None
        for name in profile.by_role(list(names), "dv"):
            if name not in self._reported:
                raise ProtocolError(self.tool, f"{name} is a DV: no event report has carried it yet")
            out[name] = self._reported[name]
        return {n: out[n] for n in names}

    async def _command(self, name: str, args: Mapping[str, Value]) -> None:
        cmd, link = self.gem.commands[name], self._linked()
        declared = self.gem.command_args(name)
        unknown = sorted(set(args) - set(declared))
        if unknown:
            raise ToolError(self.tool, f"command {name!r} takes {declared}, not {unknown}")
        try:
            encode = to_text_item if cmd.text_values else to_item
            params = [Item.list(Item.ascii(cp), encode(self.gem, var, args[var]))
                      for cp, var in cmd.params.items() if var in args]
            if cmd.program:
                ppid = await self._download(name, args)
                params.append(Item.list(Item.ascii(self.gem.process_programs.ppid_param), Item.ascii(ppid)))
        except ValueMismatch as exc:
            raise ToolError(self.tool, f"command {name!r}: {exc}") from None
        answer = await link.request(2, 41, Item.list(Item.ascii(cmd.rcmd), Item.list(*params)))
        try:
            reply = _list(answer, 2, "S2F42")
            hcack = ack_code(reply[0])
        except ValueMismatch as exc:
            raise ProtocolError(self.tool, str(exc)) from None
        if hcack in OK_HCACK or (hcack == 5 and name == "abort"):  # 5: already in the desired condition
            return
        bad = [f"{p.value[0].value}: {CPACK.get(_code(p.value[1]), 'refused')}" for p in reply[1].value
               if p.format == "L" and len(p.value) == 2] if reply[1].format == "L" else []
        detail = f"; {', '.join(bad)}" if bad else ""
        raise CommandRejected(self.tool, f"{cmd.rcmd}: HCACK {hcack} ({HCACK.get(hcack, 'unknown')}){detail}")

    async def _download(self, name: str, args: Mapping[str, Value]) -> str:
        """S7F3: the command's `program` fields as `name=value` lines under a PPID made for the job."""
        cmd, pp = self.gem.commands[name], self.gem.process_programs
        ppid = pp.ppid.format(kind=self.gem.kind, job_id=args.get("job_id", 0))
        body = "".join(f"{v}={args[v]}\n" for v in cmd.program if v in args)
        if len(body) > pp.max_body_bytes:
            raise ToolError(self.tool, f"process program {ppid} is {len(body)} bytes, over "
                                       f"process_programs.max_body_bytes {pp.max_body_bytes}")
        answer = await self._linked().request(7, 3, Item.list(Item.ascii(ppid), Item.ascii(body)))
        try:
            ack = ack_code(answer)
        except ValueError as exc:
            raise ProtocolError(self.tool, f"S7F4: {exc}") from None
        if ack != 0:
            why = f"ACKC7 {ack} ({ACKC7.get(ack, '?')})"
            raise CommandRejected(self.tool, f"S7F3 process program {ppid}: {why}")
        return ppid


def _u4_list(ids: list[int]) -> Item:
    """E5's `L,n <id>`: ids (SVID, CEID, ...) as a list of one-value U4 items."""
    return Item.list(*[Item.u4(i) for i in ids])


def _code(item: Item) -> int:
    try:
        return ack_code(item)
    except ValueError:
        return -1


def _list(item: Item | None, size: int, what: str) -> list[Any]:
    """The list's items if `item` is a list of `size`; else ValueMismatch."""
    if item is None or item.format != "L" or len(item.value) != size:
        got = "nothing" if item is None else f"{item.format} of {len(item.value)}"
        raise ValueMismatch(f"{what}: expected a list of {size}, got {got}")
    return list(item.value)
