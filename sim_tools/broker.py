"""MQTT brokers for emulated lines and tests: embedded amqtt (in-process) and a real mosquitto.

The amqtt broker runs on its own event loop in a daemon thread. amqtt spawns a fresh task per
broadcast and per client handler, so on the caller's loop it would leave tasks behind after every
publish; on its own loop they are invisible to the caller and are all cancelled when it stops.
Two amqtt 0.12 bugs are worked around in `_make_amqtt_broker` (see there).
Both brokers listen on loopback only: never the wildcard address (amqtt's own default).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import getpass
import logging
import shutil
import socket
import subprocess
import threading
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from drivers.netcheck import loopback_problem

log = logging.getLogger(__name__)

def _check_host(host: str) -> None:
    """Listen on loopback only, judged on the resolved address ("0" is the wildcard address too)."""
    if (why := loopback_problem(host)) is not None:
        raise ValueError(f"refusing to bind the MQTT broker: {why}")


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _quiet_amqtt() -> None:
    """amqtt and its state machine library log every connection and packet at INFO/DEBUG."""
    for name in ("amqtt", "transitions"):
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < logging.WARNING or logger.level == logging.NOTSET:
            logger.setLevel(logging.WARNING)


class _SnapshotDict(dict[str, Any]):
    """Iterates over a copy: amqtt loops over its subscription table across awaits, and a client
    subscribing meanwhile raised "dictionary changed size during iteration" in amqtt 0.12."""

    def __iter__(self) -> Iterator[str]:
        return iter(list(super().keys()))

    def items(self) -> list[tuple[str, Any]]:  # type: ignore[override]
        return list(super().items())


def _make_amqtt_broker(config: dict[str, Any]) -> Any:
    """amqtt's Broker with two workarounds for amqtt 0.12 bugs seen under test load."""
    from amqtt.broker import Broker

    class _Broker(Broker):
        def __init__(self, cfg: dict[str, Any]) -> None:
            super().__init__(cfg)
            self._subscriptions = _SnapshotDict()

        async def _publish_retained_messages_for_subscription(
            self, subscription: tuple[str, int], session: Any
        ) -> None:
            # On connect amqtt replays retained messages for EVERY client's subscriptions to the
            # new client; only replay those of filters this client subscribed itself.
            subscribers = self._subscriptions.get(subscription[0], [])
            if any(s.client_id == session.client_id for s, _ in subscribers):
                await super()._publish_retained_messages_for_subscription(subscription, session)

    return _Broker(config)


class EmbeddedBroker:
    """amqtt on 127.0.0.1. With `password_file` (user:argon2-hash lines) it refuses anonymous and
    unknown clients; with `acl` (see drivers.mqtt_access.amqtt_acl) every publish and subscribe is
    checked; with `certfile`/`keyfile` it speaks TLS only. Without a password file it is anonymous,
    which only tests of the protocol itself and benches that say so may ask for."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        password_file: Path | None = None,
        acl: dict[str, dict[str, list[str]]] | None = None,
        certfile: Path | None = None,
        keyfile: Path | None = None,
    ) -> None:
        _check_host(host)
        if acl is not None and password_file is None:
            raise ValueError("an ACL needs a password file: anonymous clients have no user to check")
        if (certfile is None) != (keyfile is None):
            raise ValueError("certfile and keyfile go together")
        self.host = host
        self.port = port
        self.password_file = password_file
        self.acl = acl
        self.certfile, self.keyfile = certfile, keyfile
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._broker: Any = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _config(self) -> dict[str, Any]:
        plugins: dict[str, Any] = {}
        if self.password_file is None:
            plugins["amqtt.plugins.authentication.AnonymousAuthPlugin"] = {"allow_anonymous": True}
        else:  # the only auth plugin: a client without a user gets no answer from it, so is refused
            plugins["amqtt.plugins.authentication.FileAuthPlugin"] = {
                "password_file": str(self.password_file)
            }
        if self.acl is not None:
            plugins["amqtt.plugins.topic_checking.TopicAccessControlListPlugin"] = self.acl
        listener: dict[str, Any] = {"type": "tcp", "bind": f"{self.host}:{self.port}"}
        if self.certfile is not None:
            listener.update(ssl=True, certfile=str(self.certfile), keyfile=str(self.keyfile))
        return {"listeners": {"default": listener}, "plugins": plugins}

    async def start(self, timeout_s: float = 10.0) -> int:
        """Start the broker thread; returns the port it listens on."""
        if self.running:
            return self.port
        _quiet_amqtt()
        started: concurrent.futures.Future[int] = concurrent.futures.Future()
        self._thread = threading.Thread(
            target=self._serve, args=(started,), name=f"amqtt-{self.host}:{self.port}", daemon=True
        )
        self._thread.start()
        try:
            self.port = await asyncio.wait_for(asyncio.wrap_future(started), timeout_s)
        except BaseException:
            await self.stop()
            raise
        log.info("embedded MQTT broker on %s:%d", self.host, self.port)
        return self.port

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Shut the broker down (clients see the connection drop) and join its thread."""
        thread, loop = self._thread, self._loop
        if thread is None:
            return
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # loop already stopping
                loop.call_soon_threadsafe(loop.stop)
        await asyncio.to_thread(thread.join, timeout_s)
        if thread.is_alive():
            log.warning("embedded MQTT broker thread did not stop within %g s", timeout_s)
        self._thread = None
        self._loop = None

    # --- broker thread ---------------------------------------------------------------------------
    def _serve(self, started: concurrent.futures.Future[int]) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._start_broker(started))
            if started.exception() is None:
                loop.run_forever()
                loop.run_until_complete(self._shutdown_broker())
        finally:
            self._cancel_leftovers(loop)
            loop.close()

    async def _start_broker(self, started: concurrent.futures.Future[int]) -> None:
        try:
            with warnings.catch_warnings():  # amqtt 0.12 calls its subscribe ACL `acl` and warns
                warnings.filterwarnings("ignore", "The 'acl' option is deprecated", DeprecationWarning)
                broker = _make_amqtt_broker(self._config())
                await broker.start()
            self._broker = broker
            server = broker._servers["default"].instance
            port = int(server.sockets[0].getsockname()[1])
        except BaseException as exc:  # hand every failure to the waiting start()
            started.set_exception(exc)
            return
        started.set_result(port)

    async def _shutdown_broker(self) -> None:
        """Stop listening first, then end the sessions. amqtt closes its listeners last, after
        closing every session; a TLS session can take longer to close than the shutdown timeout,
        and the listener then outlived the broker with the port bound. A restart could not bind, and
        clients queued in the dead listener's backlog until each TLS handshake timed out (seen in the
        fault campaign's broker_restart)."""
        broker, self._broker = self._broker, None
        if broker is None:
            return
        for server in list(getattr(broker, "_servers", {}).values()):
            if server.instance is not None:
                server.instance.close()
        try:
            async with asyncio.timeout(5.0):
                await broker.shutdown()
        except Exception:  # a failing shutdown must not keep the thread alive
            log.exception("amqtt shutdown failed")

    @staticmethod
    def _cancel_leftovers(loop: asyncio.AbstractEventLoop) -> None:
        """amqtt can leave per-client delivery tasks behind after shutdown: cancel and reap them."""
        tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
        if tasks:
            log.debug("cancelling %d amqtt task(s) left after shutdown", len(tasks))
        for task in tasks:
            task.cancel()
        if tasks:
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())


class MosquittoBroker:
    """A real mosquitto process on loopback (`mosquitto -c <generated config>`), for tests and benches."""

    def __init__(
        self,
        workdir: Path,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        binary: str = "mosquitto",
        password_file: Path | None = None,
        acl_file: Path | None = None,
        extra_config: Sequence[str] = (),
    ) -> None:
        """`extra_config` lines go into the listener's section, e.g. certfile/keyfile for TLS."""
        if acl_file is not None and password_file is None:
            raise ValueError("an ACL needs a password file: anonymous clients have no user to check")
        _check_host(host)
        self.workdir = workdir
        self.host = host
        self.port = port
        self.binary = binary
        self.password_file = password_file
        self.acl_file = acl_file
        self.extra_config = list(extra_config)
        self._proc: subprocess.Popen[bytes] | None = None

    @staticmethod
    def available(binary: str = "mosquitto") -> bool:
        return shutil.which(binary) is not None

    def _write_config(self) -> Path:
        lines = [
            f"listener {self.port} {self.host}",
            "set_tcp_nodelay true",
            "max_queued_messages 10000",
            "log_dest stderr",
        ]
        with contextlib.suppress(KeyError, OSError):  # no passwd entry: leave mosquitto's default
            # Started as root, mosquitto would switch to user "mosquitto", which cannot read
            # our temp files; naming ourselves keeps it as is (ignored when not root).
            lines.append(f"user {getpass.getuser()}")
        if self.password_file is None:
            lines.append("allow_anonymous true")
        else:
            lines += ["allow_anonymous false", f"password_file {self.password_file}"]
        if self.acl_file is not None:
            lines.append(f"acl_file {self.acl_file}")
        lines += self.extra_config
        path = self.workdir / f"mosquitto-{self.port}.conf"
        path.write_text("\n".join(lines) + "\n")
        return path

    @staticmethod
    def _spawn(exe: str, conf: Path, logfile: Path) -> subprocess.Popen[bytes]:
        with logfile.open("ab") as err:
            return subprocess.Popen(
                [exe, "-c", str(conf)], stdin=subprocess.DEVNULL, stdout=err, stderr=err
            )

    async def start(self, timeout_s: float = 5.0) -> int:
        exe = shutil.which(self.binary)
        if exe is None:
            raise FileNotFoundError(f"{self.binary} not found on PATH")
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.port == 0:
            self.port = _free_port(self.host)
        logfile = self.workdir / f"mosquitto-{self.port}.log"
        self._proc = self._spawn(exe, self._write_config(), logfile)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            if self._proc.poll() is not None:
                tail = logfile.read_text(errors="replace")[-800:]
                self._proc = None
                raise RuntimeError(f"mosquitto exited at start: {tail}")
            try:
                async with asyncio.timeout(0.5):
                    _, writer = await asyncio.open_connection(self.host, self.port)
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
                return self.port
            except (OSError, TimeoutError):
                if loop.time() > deadline:
                    await self.stop()
                    raise TimeoutError(f"mosquitto not accepting on port {self.port}") from None
                await asyncio.sleep(0.02)

    async def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            await asyncio.to_thread(proc.wait, 5.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            await asyncio.to_thread(proc.wait, 5.0)
