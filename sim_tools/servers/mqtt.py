"""An emulated tool as an MQTT client: retained JSON status, QoS 1 JSON commands, last will.

Wire conventions are those of drivers/profiles/mqtt.py. The encoding here is written out on
purpose instead of reusing the driver's codec, so a codec bug cannot hide on both sides.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import ssl
from pathlib import Path
from typing import Any

import aiomqtt

from drivers.addresses import MqttAddress
from drivers.profiles.mqtt import READ_COMMAND, MqttProfile
from drivers.transports.mqtt import NODELAY, cancel_until_done, consume_disconnect_error
from sim_tools.faults import FaultKind
from sim_tools.model import EmulatedTool, Refused

log = logging.getLogger(__name__)

RECONNECT_S = (0.05, 1.0)  # first and longest wait between broker connection attempts
LINK_DROP_PAUSE_S = 0.2  # how long a dropped tool stays away before reconnecting
CONNECT_TIMEOUT_S = 5.0


def _publishable(topic: str) -> bool:
    """MQTT 3.1.1 §4.7: a topic name has no wildcard and no NUL, and is 1..65535 bytes of UTF-8."""
    return 0 < len(topic.encode()) <= 65535 and not any(c in topic for c in "+#\0")


class MqttToolServer:
    """Serves one EmulatedTool on the broker at `address` under `address.prefix`."""

    def __init__(
        self,
        tool: EmulatedTool,
        profile: MqttProfile,
        address: MqttAddress,
        *,
        run_dir: Path | None = None,
    ) -> None:
        self.tool = tool
        self.profile = profile
        self.address = address
        self.run_dir = run_dir
        prefix = address.prefix
        self.client_id = f"{prefix}-tool"
        self.status_topic = profile.topics.render("status", prefix)
        self.events_topic = profile.topics.render("events", prefix)
        self.command_topic = profile.topics.render("command", prefix)
        self.online_topic = profile.topics.render("online", prefix)
        self._var_of_key = {profile.key_of(v): v for v in profile.variables}
        self._task: asyncio.Task[None] | None = None
        self._replies: set[asyncio.Task[None]] = set()
        self._publisher: asyncio.Future[None] | None = None
        self._client: aiomqtt.Client | None = None
        self._status: asyncio.Queue[tuple[str, bytes, bool]] = asyncio.Queue()  # topic, payload, retain
        self._events_sent = len(tool.alarm_events)
        self._up = asyncio.Event()
        self._stopping = False
        self._dropped = False
        self.connections = 0  # sessions opened so far (tests count reconnects)

    # --- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> MqttAddress:
        """Connect to the broker and announce the tool; returns the broker address in use."""
        if self._task is not None:
            return self.address
        self._stopping = False
        self._up.clear()
        self.tool.add_listener(self._on_change)
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"mqtt-tool-{self.address.prefix}"
        )
        waiter = asyncio.ensure_future(self._up.wait())
        done, _ = await asyncio.wait(
            {waiter, self._task}, timeout=CONNECT_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED
        )
        if waiter not in done:
            waiter.cancel()
            await asyncio.wait({waiter})
            await self.stop()
            raise ConnectionError(
                f"{self.tool.name}: no MQTT broker at {self.address.host}:{self.address.port}"
            )
        return self.address

    async def stop(self) -> None:
        """Power off: retained "offline", then a clean DISCONNECT (so no last will)."""
        self._stopping = True
        self.tool.remove_listener(self._on_change)
        client = self._client
        if client is not None and self._up.is_set():
            with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
                async with asyncio.timeout(1.0):
                    await client.publish(self.online_topic, b"offline", qos=1, retain=True)
        # the publisher too: a cancel that ends _run can cut short _serve's own cleanup of it
        tasks = [t for t in (*self._replies, self._task, self._publisher) if t is not None]
        await cancel_until_done(tasks)
        for task in tasks:
            if not task.cancelled() and task.exception() is not None:
                log.error("%s: MQTT server task failed: %r", self.tool.name, task.exception())
        self._replies.clear()
        self._task = None
        self._up.clear()

    # --- broker session --------------------------------------------------------------------------
    def _make_client(self) -> aiomqtt.Client:
        a = self.address
        return aiomqtt.Client(
            a.host,
            a.port,
            identifier=self.client_id,
            username=a.username,
            password=a.password.resolve(f"{self.tool.name}: mqtt password") if a.password else None,
            tls_context=ssl.create_default_context(cafile=a.ca_file) if a.tls else None,
            will=aiomqtt.Will(self.online_topic, b"offline", qos=1, retain=True),
            socket_options=NODELAY,
            keepalive=10,
            timeout=CONNECT_TIMEOUT_S,
        )

    async def _run(self) -> None:
        """Stay connected: reconnect with backoff after a broker outage or an injected link drop."""
        delay = RECONNECT_S[0]
        while not self._stopping:
            self._dropped = False
            try:
                await self._session()
                delay = RECONNECT_S[0]
            except aiomqtt.MqttError as exc:
                log.info("%s: MQTT session ended: %s", self.tool.name, exc)
            except Exception:  # keep the emulated tool alive whatever went wrong
                log.exception("%s: MQTT session failed", self.tool.name)
            finally:
                self._client = None
                self._up.clear()
            await asyncio.sleep(LINK_DROP_PAUSE_S if self._dropped else delay)
            delay = min(delay * 2, RECONNECT_S[1])

    async def _session(self) -> None:
        """One broker connection, until the broker or an injected LINK_DROP ends it."""
        client = self._make_client()
        try:
            await self._serve(client)
        finally:
            consume_disconnect_error(client)

    async def _serve(self, client: aiomqtt.Client) -> None:
        async with client:
            self._client = client
            self.connections += 1
            await client.subscribe(self.command_topic, qos=1)
            await client.subscribe(self.online_topic, qos=1)  # to correct a stale will (below)
            await client.publish(self.online_topic, b"online", qos=1, retain=True)
            while not self._status.empty():  # stale snapshots: publish the current one instead
                self._status.get_nowait()
            await self._publish_status(client, self._status_payload())
            publisher = self._publisher = asyncio.ensure_future(self._status_publisher(client))
            self._up.set()
            try:
                async for message in client.messages:  # ends with MqttError when the link goes
                    # amqtt also pushes retained messages of OTHER clients' subscriptions to a
                    # newly connected client, so check the topic.
                    if message.topic.value == self.command_topic and not self._dropped:
                        await self._handle(client, message.payload)
                    elif (message.topic.value == self.online_topic and message.payload == b"offline"
                          and not (self._dropped or self._stopping)):
                        # the will of our previous, dropped session can reach the broker after
                        # this session said "online" (seen with amqtt under load): a live tool
                        # says so again rather than stay retained as offline
                        await client.publish(self.online_topic, b"online", qos=1, retain=True)
            finally:
                await cancel_until_done([publisher])

    # --- status ----------------------------------------------------------------------------------
    def _status_payload(self) -> bytes:
        names = list(self.profile.variables)
        values = self.tool.read(names)
        return json.dumps({self.profile.key_of(n): values[n] for n in names}).encode()

    def _on_change(self) -> None:
        """Tool listener (sync): snapshot now, so every change is published in order; alarm set and
        clear reports (SEMI E30 ALID/ALTX) go to the events topic, not retained."""
        for event in self.tool.alarm_events[self._events_sent:]:
            report = {
                "event": "alarm", "alarm_id": event.alarm_id, "state": "SET" if event.set else "CLEAR",
                "text": self.profile.alarm_text(event.alarm_id), "tool_time_s": round(event.tool_time_s, 3),
            }
            self._status.put_nowait((self.events_topic, json.dumps(report).encode(), False))
        self._events_sent = len(self.tool.alarm_events)
        self._status.put_nowait((self.status_topic, self._status_payload(), True))

    async def _status_publisher(self, client: aiomqtt.Client) -> None:
        with contextlib.suppress(aiomqtt.MqttError):  # link gone: the session loop reconnects
            while True:
                topic, payload, retain = await self._status.get()
                await client.publish(topic, payload, qos=self.profile.qos, retain=retain)

    async def _publish_status(self, client: aiomqtt.Client, payload: bytes) -> None:
        await client.publish(self.status_topic, payload, qos=self.profile.qos, retain=True)

    # --- requests --------------------------------------------------------------------------------
    async def _handle(self, client: aiomqtt.Client, payload: Any) -> None:
        """Answer one request, or not, as the active link faults say."""
        try:
            req = json.loads(payload)
            rid, cmd, args, reply_to = req["id"], req["cmd"], req.get("args", {}), req["reply_to"]
            if not (isinstance(rid, str) and isinstance(cmd, str) and isinstance(args, dict)):
                raise TypeError("id/cmd must be strings and args an object")
            if not isinstance(reply_to, str) or not reply_to:
                raise TypeError("reply_to must be a topic")
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("%s: malformed MQTT command %r: %s", self.tool.name, payload, exc)
            return
        if not _publishable(reply_to):  # a wildcard there once crashed this session
            refusal = {"event": "refused", "id": rid, "cmd": cmd,
                       "error": f"7 reply_to {reply_to[:80]!r} is not a topic one can publish to"}
            self._status.put_nowait((self.events_topic, json.dumps(refusal).encode(), False))
            return
        faults = self.tool.faults
        if faults.fires(FaultKind.SILENCE):
            return
        if faults.fires(FaultKind.LINK_DROP):
            self._drop_link(client)
            return
        reply = json.dumps({"id": rid, **self._execute(cmd, args)}).encode()
        if faults.fires(FaultKind.GARBLE):
            reply = b"\xff\x00garbled " + os.urandom(12)
        delay = faults.fires(FaultKind.DELAY)
        if delay is not None:
            task = asyncio.ensure_future(self._reply_later(client, reply_to, reply, delay.delay_s))
            self._replies.add(task)
            task.add_done_callback(self._replies.discard)
        else:
            await client.publish(reply_to, reply, qos=self.profile.qos)
        if cmd != READ_COMMAND:
            self._status.put_nowait((self.status_topic, self._status_payload(), True))

    def _execute(self, cmd: str, args: dict[str, Any]) -> dict[str, Any]:
        try:
            if cmd == READ_COMMAND:
                keys = args.get("names")
                if not isinstance(keys, list):
                    raise Refused(7, "read needs args.names: a list of variable names")
                unknown = [k for k in keys if k not in self._var_of_key]
                if unknown:
                    raise Refused(7, f"unknown variable(s) {unknown}")
                values = self.tool.read([self._var_of_key[k] for k in keys])
                return {"ok": True, "values": {k: values[self._var_of_key[k]] for k in keys}}
            if cmd not in self.profile.commands:
                raise Refused(2, f"unknown command {cmd}")
            self.tool.command(cmd, {self._var_of_key.get(k, k): v for k, v in args.items()})
            return {"ok": True, "values": {}}
        except Refused as exc:
            return {"ok": False, "error": f"{exc.code} {exc.text}"}
        except Exception as exc:  # an emulator bug must reach the driver, not kill the server
            log.exception("%s: %s failed", self.tool.name, cmd)
            return {"ok": False, "error": f"99 internal error: {exc}"}

    async def _reply_later(self, client: aiomqtt.Client, topic: str, reply: bytes, s: float) -> None:
        await asyncio.sleep(s)
        with contextlib.suppress(aiomqtt.MqttError):
            await client.publish(topic, reply, qos=self.profile.qos)

    def _drop_link(self, client: aiomqtt.Client) -> None:
        """Cut TCP without DISCONNECT, as a crashed tool or pulled cable: the broker sends the will."""
        log.info("%s: injecting MQTT link drop", self.tool.name)
        self._dropped = True
        sock = client._client.socket()
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
