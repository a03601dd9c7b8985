"""Serial emulator: answers a profile's request lines on a pty or a loopback TCP port (socket://).

A pty is reached through a stable symlink (run_dir/<tool>.tty), re-pointed whenever a new pty is
made (restart, link drop), so a driver reconnects as to a re-plugged USB adapter. The server keeps
its own fd on the slave open: the master then reads no EIO when a driver closes, and raw mode
survives between driver opens.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import random
import shutil
import tempfile
import tty
import urllib.parse
from collections.abc import Awaitable, Callable
from pathlib import Path

from drivers.addresses import SerialAddress
from drivers.netcheck import loopback_problem
from drivers.profiles.base import Value
from drivers.profiles.serial import SerialProfile
from drivers.transports.serial_codec import codec_for
from sim_tools.faults import FaultKind
from sim_tools.model import EmulatedTool, Refused

log = logging.getLogger(__name__)

UNKNOWN_REQUEST = 2
INTERNAL_ERROR = 9
GARBAGE = b"\xff\x00#"
EIO_RETRY_S = 0.02
WRITE_GIVE_UP_S = 1.0
Write = Callable[[bytes], Awaitable[None]]


class _Pty:
    """One pty pair: feeds the master's input into a StreamReader, writes replies to the master."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        os.set_blocking(self.master, False)
        self.path = os.ttyname(self.slave)
        self.reader = asyncio.StreamReader()
        self.task: asyncio.Task[None] | None = None
        self._retry: asyncio.TimerHandle | None = None
        self._closed = False
        self.loop.add_reader(self.master, self._readable)

    def _readable(self) -> None:
        try:
            data = os.read(self.master, 4096)
        except BlockingIOError:
            return
        except OSError as exc:
            # EIO: no process has the slave open. Stop watching (it would spin) and look again soon.
            self.loop.remove_reader(self.master)
            if exc.errno == errno.EIO and not self._closed:
                self._retry = self.loop.call_later(
                    EIO_RETRY_S, self.loop.add_reader, self.master, self._readable
                )
            else:
                self.reader.feed_eof()
            return
        if data:
            self.reader.feed_data(data)

    async def write(self, data: bytes) -> None:
        view = memoryview(data)
        deadline = self.loop.time() + WRITE_GIVE_UP_S
        while view:
            try:
                view = view[os.write(self.master, view) :]
            except BlockingIOError:  # nobody reads the slave and its queue is full
                if self.loop.time() > deadline:
                    log.warning("pty %s: nobody reads; dropping %d bytes", self.path, len(view))
                    return
                await asyncio.sleep(0.005)
            except OSError as exc:  # pty closed under us (stop, link drop): the reply is lost
                log.info("pty %s: write failed: %s", self.path, exc)
                return

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._retry is not None:
            self._retry.cancel()
        self.loop.remove_reader(self.master)
        self.reader.feed_eof()
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)


class SerialToolServer:
    """Serve one emulated tool on `address.url`: 'pty', a symlink path to (re)make, or socket://."""

    def __init__(
        self,
        tool: EmulatedTool,
        profile: SerialProfile,
        address: SerialAddress,
        *,
        run_dir: Path | None = None,
        wire_time: bool = True,
    ) -> None:
        self.tool = tool
        self.profile = profile
        self.address = address
        self.wire_time = wire_time
        self.codec = codec_for(profile)
        self._run_dir = run_dir
        self._own_dir: Path | None = None
        self._link_path: Path | None = None
        self._pty: _Pty | None = None
        self._tcp: asyncio.Server | None = None
        self._clients: set[asyncio.Task[None]] = set()
        self._rng = random.Random(0)
        requests = [("query", n, q.request) for n, q in self.codec.queries.items()]
        requests += [("command", n, c.request) for n, c in self.codec.commands.items()]
        # fixed request lines are found by dict lookup, templated ones by regex in profile order
        self._literal = {t.literal: (k, n) for k, n, t in reversed(requests) if t.literal}
        self._patterns = [(k, n, t) for k, n, t in requests if t.literal is None]

    # --- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> SerialAddress:
        url = self.address.url
        if url.startswith("socket://"):
            parsed = urllib.parse.urlparse(url)
            if (why := loopback_problem(parsed.hostname or "")) is not None:  # the line's own rule
                raise ValueError(f"{url}: emulators listen on loopback only: {why}")
            self._tcp = await asyncio.start_server(self._on_client, "127.0.0.1", parsed.port or 0)
            url = f"socket://127.0.0.1:{self._tcp.sockets[0].getsockname()[1]}"
        else:
            url = self._start_pty(url)
        log.info("%s: serial emulator on %s", self.tool.name, url)
        # the live address (real port, symlink path): a restart serves it again, so drivers
        # configured with it reconnect
        self.address = SerialAddress(url=url, baud=self.address.baud)
        return self.address

    async def stop(self) -> None:
        if self._tcp is not None:
            self._tcp.close()
            self._tcp = None
        clients, self._clients = list(self._clients), set()
        for task in clients:
            task.cancel()
        pty, self._pty = self._pty, None
        if pty is not None:
            pty.close()
            if pty.task is not None:
                pty.task.cancel()
                clients.append(pty.task)
            # remove our symlink: left dangling, it could lead to a pts number reused later
            with contextlib.suppress(OSError):
                if self._link_path and os.readlink(self._link_path) == pty.path:
                    self._link_path.unlink()
        await asyncio.gather(*clients, return_exceptions=True)
        if self._own_dir is not None:
            shutil.rmtree(self._own_dir, ignore_errors=True)

    def _start_pty(self, url: str) -> str:
        """Serve a pty behind the symlink run_dir/<tool>.tty ('pty') or the given path."""
        if url == "pty":
            if self._run_dir is None:
                self._run_dir = self._own_dir = Path(tempfile.mkdtemp(prefix="waferline-"))
            url = str(self._run_dir / f"{self.tool.name}.tty")
        link = self._link_path = Path(url)
        if link.exists() and not link.is_symlink():
            raise ValueError(f"{link} exists and is not a symlink; will not replace it")
        link.parent.mkdir(parents=True, exist_ok=True)
        self._new_pty()
        return url

    def _new_pty(self) -> None:
        """Make a pty, point the symlink at it atomically, and serve it."""
        assert self._link_path is not None
        pty = _Pty()
        tmp = self._link_path.with_name(f".{self._link_path.name}.{os.getpid()}.tmp")
        tmp.unlink(missing_ok=True)
        os.symlink(pty.path, tmp)
        os.replace(tmp, self._link_path)
        pty.task = asyncio.get_running_loop().create_task(
            self._serve(pty.reader, pty.write, lambda: self._drop_pty(pty)),
            name=f"serial-emulator:{self.tool.name}",
        )
        self._pty = pty

    async def _drop_pty(self, pty: _Pty) -> None:
        """LINK_DROP: the adapter vanishes; a new one appears behind the same symlink."""
        if self._pty is pty:
            self._new_pty()
        pty.close()

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._clients.add(task)

        async def write(data: bytes) -> None:
            writer.write(data)
            await writer.drain()

        async def drop() -> None:
            writer.transport.abort()

        try:
            await self._serve(reader, write, drop)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # cancelled by stop(): end normally, or 3.11's stream callback logs a traceback
        finally:
            self._clients.discard(task)
            writer.close()

    # --- requests ------------------------------------------------------------------------------
    async def _serve(
        self, reader: asyncio.StreamReader, write: Write, drop: Callable[[], Awaitable[None]]
    ) -> None:
        """Answer request lines one at a time, applying the tool's link faults per request."""
        faults = self.tool.faults
        while True:
            try:
                raw = await reader.readuntil(self.codec.terminator)
            except asyncio.IncompleteReadError:
                return
            except asyncio.LimitOverrunError as exc:
                await reader.readexactly(exc.consumed)
                raw = b"\xff"  # an overlong line is an unknown request
            if faults.fires(FaultKind.SILENCE):
                continue
            if faults.fires(FaultKind.LINK_DROP):
                log.info("%s: dropping the link (fault)", self.tool.name)
                await drop()
                return
            if (reply := self.reply_to(raw)) is None:
                continue
            if (spec := faults.fires(FaultKind.DELAY)) is not None:
                await asyncio.sleep(spec.delay_s)
            if faults.fires(FaultKind.GARBLE):
                reply = self._garble(reply)
            if self.wire_time:  # a pty or socket has no baud rate: spend the line's time here
                await asyncio.sleep(len(reply) * 10 / self.address.baud)
            await write(reply)

    def reply_to(self, raw: bytes) -> bytes | None:
        """The reply frame for one request frame (None for a blank line)."""
        codec = self.codec
        try:
            line = codec.decode(raw)
        except ValueError as exc:
            return codec.encode(codec.format_error(UNKNOWN_REQUEST, f"unknown request: {exc}"))
        if not line.strip():
            return None
        try:
            return codec.encode(self._answer(line))
        except Refused as exc:
            return codec.encode(codec.format_error(exc.code, exc.text))
        except Exception as exc:  # the emulator must keep serving whatever a request does
            log.exception("%s: request %r failed", self.tool.name, line)
            return codec.encode(codec.format_error(INTERNAL_ERROR, f"internal error: {exc}"))

    def _answer(self, line: str) -> str:
        found = self._literal.get(line)
        args: dict[str, Value] = {}
        if found is None:
            for kind, name, template in self._patterns:
                if template.matches(line):
                    try:
                        args = template.parse(line)
                    except ValueError as exc:
                        raise Refused(UNKNOWN_REQUEST, f"bad request: {exc}") from None
                    found = (kind, name)
                    break
            else:
                raise Refused(UNKNOWN_REQUEST, f"unknown request {line[:40]!r}")
        kind, name = found
        if kind == "query":
            reply = self.codec.queries[name].reply
        else:
            self.tool.command(name, args)
            reply = self.codec.commands[name].reply
        return reply.format(self.tool.read(reply.names) if reply.names else {})

    def _garble(self, frame: bytes) -> bytes:
        """Corrupt the line but keep its terminator, so the driver sees one bad line, not a hang."""
        term = self.codec.terminator
        body = bytearray(frame[: -len(term)])
        body[0:1] = GARBAGE
        pos = self._rng.randrange(len(body))
        body[pos : pos + 1] = GARBAGE
        return bytes(body) + term
