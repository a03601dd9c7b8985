"""Per-run control socket: `waferline hold|restart|stop|abort|reset RUN_ID` reaches the live sequencer.

Protocol: JSON lines on the Unix socket runs/<id>/control.sock (mode 600: only the sequencer's user may
command the run). Request {"command", "who", "why"}; reply {"ok", "state", "error"?, "held_reason"?}.
The caller is who the kernel says (SO_PEERCRED); "who" only adds a name after the OS user, and each
command checks the caller's role from the site's roles file (roles.py).
One connection may carry several requests. `start` and the engine's `complete`/`sc` are not offered
remotely: a run is started by `waferline run|resume`, and only the engine knows when work is done.

Unix socket paths are limited to 107 bytes; deeper run directories are reached through
/proc/self/fd/<dir fd>/control.sock (Linux), so a long runs dir still works.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from drivers.errors import WaferlineError
from sequencer.run.control import OPERATOR_COMMANDS, InvalidTransition, RunControl
from sequencer.run.roles import RANK, Caller, load_roles, peer, refusal, role_of
from sequencer.run.rundir import CONTROL_SOCK

log = logging.getLogger(__name__)

REMOTE_COMMANDS = (*OPERATOR_COMMANDS, "status", "bypass", "scrap", "tool", "tools")
# on_bypass(interlock, role, reason, who, minutes) -> None if granted, else why not
BypassHook = Callable[[str, str, str, str, float], str | None]
# on_scrap(stack, who, why) -> None if the stack was scrapped, else why not
ScrapHook = Callable[[str, str, str], str | None]
# on_tool(tool, op, who) -> (error or None, the tool's status after the op): an operator's tool command
# through the sequencer that owns the tool's connection
ToolHook = Callable[[str, str, str], Awaitable[tuple[str | None, dict[str, Any] | None]]]
MAX_LINE = 64 * 1024
_SUN_PATH_MAX = 107


class RemoteControlError(WaferlineError):
    """The sequencer of a run could not be reached or did not answer."""


class RunNotRunning(RemoteControlError):
    """No sequencer serves this run's control socket (it finished, crashed or was never started)."""


class BypassRequest(BaseModel):
    interlock: str
    role: str | None = Field(default=None, description="the role claimed; at most the caller's real role")
    minutes: float = Field(gt=0, le=480, description="a bypass always expires; at most one shift")


class ToolRequest(BaseModel):
    name: str
    op: Literal["status", "abort", "reset"]


class ControlRequest(BaseModel):
    command: str
    who: str = Field(default="", description="a name to journal after the caller's OS user")
    why: str = ""
    bypass: BypassRequest | None = None
    stack: str | None = Field(default=None, description="scrap: the stack (full id or S<n>)")
    tool: ToolRequest | None = Field(default=None, description="tool: one tool of the run and the op")


class ControlReply(BaseModel):
    ok: bool
    state: str
    error: str | None = None
    held_reason: str | None = None
    tools: list[str] | None = None  # `tools`: the tools this sequencer owns the connections of
    tool_status: dict[str, Any] | None = None  # `tool`: what the tool showed after the op


@contextlib.contextmanager
def _addressable(path: Path) -> Iterator[str]:
    """A path bind()/connect() accept: the path itself, or a /proc/self/fd alias when it is too long."""
    if len(os.fsencode(str(path))) <= _SUN_PATH_MAX:
        yield str(path)
        return
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)


class RemoteControlServer:
    """Serves one RunControl on a Unix socket while the sequencer runs."""

    def __init__(self, control: RunControl, path: Path) -> None:
        self.control = control
        self.path = Path(path)
        self.on_bypass: BypassHook | None = None  # set by the run once its engine exists
        self.on_scrap: ScrapHook | None = None
        self.on_tool: ToolHook | None = None
        self.tools: list[str] = []
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        """Bind the socket (replacing a stale one left by a crash; refusing if another server answers)."""
        if self.path.exists() or self.path.is_symlink():
            if await _answers(self.path):
                raise RemoteControlError(f"another sequencer already serves {self.path}")
            self.path.unlink()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with _addressable(self.path) as addr:
                sock.bind(addr)
            os.chmod(self.path, 0o600)
            self._server = await asyncio.start_unix_server(self._serve, sock=sock, limit=MAX_LINE)
        except BaseException:
            sock.close()
            with contextlib.suppress(OSError):
                self.path.unlink()
            raise

    async def stop(self) -> None:
        """Stop listening, end open connections and remove the socket file; leaves no task behind."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for task in list(self._clients):
            task.cancel()
        if self._clients:
            await asyncio.gather(*self._clients, return_exceptions=True)
        if server is not None:
            await server.wait_closed()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def __aenter__(self) -> RemoteControlServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._clients.add(task)
        caller = peer(writer.get_extra_info("socket"))
        try:
            while line := await reader.readline():
                reply = (await self._tool_command(line, caller) if b'"tool"' in line
                         else self.handle(line, caller))
                writer.write(reply.model_dump_json(exclude_none=True).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, ValueError, asyncio.IncompleteReadError) as exc:  # ValueError: line too long
            log.warning("control socket %s: dropping client: %s", self.path, exc)
        except asyncio.CancelledError:
            pass  # server stopping
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            if task is not None:
                self._clients.discard(task)

    def _denied(self, command: str, caller: Caller) -> str | None:
        """Why the caller's role does not allow the command (naming the role needed), or None."""
        try:
            role = role_of(caller, load_roles())
        except WaferlineError as exc:
            return f"{command}: roles cannot be read: {exc}"
        return refusal(command, caller, role)

    def handle(self, line: bytes, caller: Caller) -> ControlReply:
        """One request -> one reply; never raises (a bad request gets ok=false and says why)."""
        ctl = self.control
        try:
            req = ControlRequest.model_validate_json(line)
        except ValidationError as exc:
            err = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'request'}: {e['msg']}" for e in exc.errors())
            return self._reply(False, f"bad request ({err}); expected JSON {{command, who, why}}")
        if req.command not in REMOTE_COMMANDS:
            known = ", ".join(REMOTE_COMMANDS)
            return self._reply(False, f"unknown command {req.command!r}; commands: {known}")
        denied = self._denied(req.command, caller)
        if denied is not None:
            return self._reply(False, denied)
        who = caller.who(req.who)
        if req.command == "status":
            return self._reply(True)
        if req.command == "tools":
            reply = self._reply(True)
            reply.tools = list(self.tools)
            return reply
        if req.command == "tool":
            return self._reply(False, "tool needs {tool: {name, op}} and a running engine")
        if req.command == "bypass":
            if req.bypass is None or self.on_bypass is None:
                return self._reply(False, "bypass needs {interlock, role, minutes} and a running engine")
            b = req.bypass
            role = role_of(caller, load_roles())
            if b.role is not None and RANK.get(b.role, 99) > RANK[role]:
                return self._reply(False, f"bypass in the role {b.role!r} refused: {caller.user} is {role}")
            error = self.on_bypass(b.interlock, role, req.why, who, b.minutes)
            return self._reply(error is None, error)
        if req.command == "scrap":
            if req.stack is None or self.on_scrap is None:
                return self._reply(False, "scrap needs {stack} and a running engine")
            error = self.on_scrap(req.stack, who, req.why)
            return self._reply(error is None, error)
        try:
            ctl.command(req.command, who=who, why=req.why)
        except InvalidTransition as exc:
            return self._reply(False, str(exc))
        except Exception as exc:  # journal failure: the transition did not happen; tell the operator
            log.exception("control socket %s: %s by %s failed", self.path, req.command, who)
            return self._reply(False, f"{req.command} failed: {exc}")
        return self._reply(True)

    async def _tool_command(self, line: bytes, caller: Caller) -> ControlReply:
        """An operator's status, abort or reset of one tool, through the connection this sequencer owns
        (a second client on a serial line or an RTU port would fight it for the replies)."""
        try:
            req = ControlRequest.model_validate_json(line)
        except ValidationError:
            return self.handle(line, caller)  # the same error reply as any malformed request
        if req.command != "tool" or req.tool is None or self.on_tool is None:
            return self.handle(line, caller)
        denied = self._denied(f"tool:{req.tool.op}", caller)
        if denied is not None:
            return self._reply(False, denied)
        error, status = await self.on_tool(req.tool.name, req.tool.op, caller.who(req.who))
        reply = self._reply(error is None, error)
        reply.tool_status = status
        return reply

    def _reply(self, ok: bool, error: str | None = None) -> ControlReply:
        ctl = self.control
        return ControlReply(ok=ok, state=ctl.state.value, error=error, held_reason=ctl.held_reason)


async def _answers(path: Path) -> bool:
    try:
        with _addressable(path) as addr:
            _, writer = await asyncio.wait_for(asyncio.open_unix_connection(addr), 1.0)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()
    return True


async def send_command(
    run_dir: Path, command: str, who: str, why: str = "", *, timeout: float = 5.0,  # noqa: ASYNC109
    bypass: dict[str, Any] | None = None, stack: str | None = None, tool: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Send one command to the run's live sequencer and return its reply (ok may be false).

    Raises RunNotRunning when nothing serves runs/<id>/control.sock, RemoteControlError on timeout
    (the timeout is a parameter, not left to the caller, so the error can say how long we waited).
    """
    path = Path(run_dir) / CONTROL_SOCK
    run_id = Path(run_dir).name
    not_running = f"run {run_id} is not running (no sequencer on {path}); use `waferline resume {run_id}`"
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout):
            try:
                with _addressable(path) as addr:
                    reader, writer = await asyncio.open_unix_connection(addr, limit=MAX_LINE)
            except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError) as exc:
                raise RunNotRunning(not_running) from exc
            request: dict[str, Any] = {"command": command, "who": who, "why": why}
            if bypass is not None:
                request["bypass"] = bypass
            if stack is not None:
                request["stack"] = stack
            if tool is not None:
                request["tool"] = tool
            writer.write(json.dumps(request).encode() + b"\n")
            await writer.drain()
            line = await reader.readline()
    except TimeoutError:
        raise RemoteControlError(
            f"run {run_id}: the sequencer on {path} did not answer within {timeout:g} s"
        ) from None
    except OSError as exc:
        raise RemoteControlError(f"run {run_id}: control socket {path}: {exc}") from exc
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
    if not line:
        raise RemoteControlError(f"run {run_id}: the sequencer on {path} hung up without a reply")
    reply: dict[str, Any] = json.loads(line)
    return reply
