"""Run-time control of a running emulated line: switch faults, open interlocks, raise alarms.

`waferline sim up` serves JSON lines on a Unix socket in its run directory (local only; the path is
in the endpoints file as `control`). One request per line, one reply per line:
  {"op": "fault", "tool": "bonder1", "fault": {"kind": "silence"}}   -> {"ok": true}
  {"op": "clear", "tool": "bonder1", "kind": "silence"}              (kind null clears all)
  {"op": "interlock", "tool": "saw1", "name": "door_closed", "healthy": false}
  {"op": "alarm", "tool": "sputter1", "alarm_id": 202}
  {"op": "faults"}                                                   -> {"ok": true, "faults": {...}}
  {"op": "jobs"}   the job ledger: every job id each tool accepted, in order, with its outcome, and
                   every start a tool got while an interlock was open or an alarm set (violations)
      -> {"ok": true, "jobs": {tool: [id, ...]},
          "ledger": {tool: [{"job_id": id, "outcome": "COMPLETED|ABORTED|FAILED|RUNNING|POWER_LOST"}]},
          "violations": {tool: ["start of job 7 with interlock door_closed not made", ...]},
          "raced": {tool: [...]}}   violations: the input was already open when the tool last reported
                   its status; raced: it opened after that (the tool's own refusal caught the start)
  {"op": "power_cycle", "tool": "bonder1"}   the tool loses power and boots again (new boot id)
  {"op": "broker_restart", "down_s": 0.5}    the embedded broker goes down for down_s, then comes back
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from drivers.validation import describe_validation_error
from sim_tools.faults import FaultKind, FaultSpec
from sim_tools.model import EmulatedTool

log = logging.getLogger(__name__)
TIMEOUT_S = 5.0
REPLY_LIMIT = 16 * 1024 * 1024  # a long-lived line's job ledger outgrows the default 64 KiB line


class _Req(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class SetFault(_Req):
    op: Literal["fault"]
    tool: str
    fault: FaultSpec


class ClearFault(_Req):
    op: Literal["clear"]
    tool: str
    kind: FaultKind | None = None


class SetInterlock(_Req):
    op: Literal["interlock"]
    tool: str
    name: str
    healthy: bool


class RaiseAlarm(_Req):
    op: Literal["alarm"]
    tool: str
    alarm_id: int = Field(ge=1, le=65535)


class ListFaults(_Req):
    op: Literal["faults"]


class ListJobs(_Req):
    op: Literal["jobs"]


class PowerCycle(_Req):
    op: Literal["power_cycle"]
    tool: str


class BrokerRestart(_Req):
    op: Literal["broker_restart"]
    down_s: float = Field(default=0.5, ge=0, le=60)


AnyRequest = (SetFault | ClearFault | SetInterlock | RaiseAlarm | ListFaults | ListJobs | PowerCycle
              | BrokerRestart)
_REQUEST: TypeAdapter[AnyRequest] = TypeAdapter(Annotated[AnyRequest, Field(discriminator="op")])


class ControlServer:
    def __init__(self, tools: dict[str, EmulatedTool], path: Path, broker: Any = None) -> None:
        self.tools = tools
        self.path = path
        self.broker = broker  # the embedded broker, for broker_restart (None: the line has none)
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[Any]] = set()

    async def start(self) -> Path:
        self.path.unlink(missing_ok=True)
        self._server = await asyncio.start_unix_server(self._serve, path=str(self.path))
        self.path.chmod(0o600)  # the line's operator only
        return self.path

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        self.path.unlink(missing_ok=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            while line := await reader.readline():
                reply = await self._restart_broker(line) if b"broker_restart" in line else self.handle(line)
                writer.write(json.dumps(reply).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._handlers.discard(task)
            writer.close()

    async def _restart_broker(self, line: bytes) -> dict[str, Any]:
        try:
            req = _REQUEST.validate_json(line)
        except ValidationError:
            return self.handle(line)
        if not isinstance(req, BrokerRestart):
            return self.handle(line)
        if self.broker is None:
            return {"ok": False, "error": "this line has no embedded broker to restart"}
        await self.broker.stop()
        await asyncio.sleep(req.down_s)
        await self.broker.start()
        log.info("control: broker restarted after %g s down", req.down_s)
        return {"ok": True}

    def handle(self, line: bytes) -> dict[str, Any]:
        try:
            req = _REQUEST.validate_json(line)
        except ValidationError as exc:
            return {"ok": False, "error": describe_validation_error("control request", exc)}
        if isinstance(req, ListFaults):
            return {"ok": True, "faults": {n: t.faults.active() for n, t in self.tools.items()}}
        if isinstance(req, ListJobs):
            return {"ok": True, "jobs": {n: list(t.job_log) for n, t in self.tools.items()},
                    "ledger": {n: [{"job_id": j, "outcome": t.job_outcomes.get(j, "?")} for j in t.job_log]
                               for n, t in self.tools.items()},
                    "violations": {n: list(t.violations) for n, t in self.tools.items()},
                    "raced": {n: list(t.raced) for n, t in self.tools.items()}}
        if isinstance(req, BrokerRestart):
            return {"ok": False, "error": "broker_restart is served asynchronously"}
        tool = self.tools.get(req.tool)
        if tool is None:
            return {"ok": False, "error": f"tool: {req.tool!r} not one of {sorted(self.tools)}"}
        try:
            if isinstance(req, SetFault):
                tool.faults.set(req.fault)
            elif isinstance(req, ClearFault):
                tool.faults.clear(req.kind)
            elif isinstance(req, SetInterlock):
                tool.set_interlock(req.name, req.healthy)
            elif isinstance(req, PowerCycle):
                tool.power_cycle()
            else:
                tool.raise_alarm(req.alarm_id)
        except KeyError as exc:
            return {"ok": False, "error": str(exc.args[0])}
        log.info("control: %s", req.model_dump(mode="json", exclude_none=True))
        return {"ok": True}


async def send(path: Path, request: dict[str, Any]) -> dict[str, Any]:
    """One request to a running line's control socket."""
    try:
        async with asyncio.timeout(TIMEOUT_S):
            reader, writer = await asyncio.open_unix_connection(str(path), limit=REPLY_LIMIT)
            try:
                writer.write(json.dumps(request).encode() + b"\n")
                await writer.drain()
                reply: dict[str, Any] = json.loads(await reader.readline())
            finally:
                writer.close()
                with contextlib.suppress(ConnectionError):
                    await writer.wait_closed()
    except (OSError, TimeoutError, json.JSONDecodeError) as exc:
        return {"ok": False, "error": f"control socket {path}: {exc or type(exc).__name__}"}
    return reply
