"""MQTT channel: JSON request/reply over a broker, matched by correlation id (see profiles/mqtt.py).

One background task dispatches everything the broker sends us: replies resolve the pending request
with their id, and the tool's retained online/offline flag (its last will) fails pending requests
at once instead of letting them run into the request timeout.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import secrets
import socket
import ssl
from collections.abc import Mapping, Sequence
from typing import Any

import aiomqtt

from drivers.addresses import MqttAddress
from drivers.channel import Channel, Timeouts, describe
from drivers.errors import (
    CommandRejected,
    ProtocolError,
    ToolConnectionError,
    ToolError,
    ToolOffline,
)
from drivers.profiles.base import Value
from drivers.profiles.mqtt import READ_COMMAND, MqttProfile

# Without TCP_NODELAY, Nagle + delayed ACK make a QoS 1 round trip ~88 ms instead of ~1 ms.
NODELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
KEEPALIVE_S = 30


# --- codec: pure functions, shared by the channel and the tests ---------------------------------
def encode_request(rid: str, cmd: str, args: Mapping[str, Any], reply_to: str) -> bytes:
    return json.dumps({"id": rid, "cmd": cmd, "args": dict(args), "reply_to": reply_to}).encode()


def parse_reply(payload: object) -> dict[str, Any] | None:
    """The reply object if the payload is a JSON object with a string id, else None (garbled)."""
    if not isinstance(payload, bytes | bytearray | str):
        return None
    try:
        doc = json.loads(payload)
    except ValueError:  # includes UnicodeDecodeError
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("id"), str):
        return None
    return doc


def reply_values(tool: str, cmd: str, doc: Mapping[str, Any]) -> dict[str, Any]:
    """`values` of an ok reply; CommandRejected for ok=false; ProtocolError if fields are missing."""
    ok = doc.get("ok")
    if ok is False:
        error = doc.get("error")
        if not isinstance(error, str):
            raise ProtocolError(tool, f"{cmd}: ok=false reply without error text: {describe(doc)}")
        raise CommandRejected(tool, f"{cmd} refused: {error}")
    if ok is not True:
        raise ProtocolError(tool, f"{cmd}: reply without boolean 'ok': {describe(doc)}")
    values = doc.get("values", None if cmd == READ_COMMAND else {})
    if not isinstance(values, dict):
        raise ProtocolError(tool, f"{cmd}: reply 'values' is not an object: {describe(doc)}")
    return values


def decode_value(tool: str, profile: MqttProfile, name: str, raw: object) -> Value:
    """A JSON value as the profile's type; enums accept member names (or their wire codes)."""
    var = profile.variables[name]
    kind = var.type
    table = profile.enum_table(var.enum) if var.enum else {}
    if isinstance(raw, bool):
        if kind == "bool":
            return raw
    elif isinstance(raw, int | float):
        if kind == "float":
            return float(raw)
        if kind == "int" and (isinstance(raw, int) or raw.is_integer()):
            return int(raw)
        if kind == "bool" and raw in (0, 1):
            return bool(raw)
        if kind == "enum" and raw in table.values():
            return next(member for member, code in table.items() if code == raw)
    elif isinstance(raw, str) and (kind == "str" or (kind == "enum" and raw in table)):
        return raw
    if kind == "enum":
        raise ProtocolError(
            tool, f"{name}: {describe(raw)} is not a member of enum {var.enum} {sorted(table)}"
        )
    raise ProtocolError(tool, f"{name}: {describe(raw)} is not a valid {kind}")


def consume_disconnect_error(client: aiomqtt.Client) -> None:
    """Mark aiomqtt's "unexpected disconnection" as seen: when the link dies while nobody iterates
    messages, asyncio would log "Future exception was never retrieved" at garbage collection."""
    fut = getattr(client, "_disconnected", None)
    if isinstance(fut, asyncio.Future) and fut.done() and not fut.cancelled():
        fut.exception()


async def cancel_until_done(tasks: Sequence[asyncio.Task[Any] | asyncio.Future[Any]]) -> None:
    """Cancel and wait, again until they end: aiomqtt waits with asyncio.wait_for, which on Python
    3.11 swallows a cancel that arrives as the awaited PUBACK does; the task then lives on (seen as a
    hang of a broker-side tool's stop under test load)."""
    pending = {t for t in tasks if not t.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.2)


def _topic_safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)


class MqttChannel(Channel):
    transport = "mqtt"

    def __init__(
        self,
        tool: str,
        profile: MqttProfile,
        address: MqttAddress,
        timeouts: Timeouts | None = None,
        client_id: str | None = None,
    ) -> None:
        super().__init__(tool, profile, timeouts)
        self.mqtt_profile = profile
        self.address = address
        self.client_id = client_id or f"waferline-{_topic_safe(tool)}-{secrets.token_hex(4)}"
        topics, prefix = profile.topics, address.prefix
        self.command_topic = topics.render("command", prefix)
        self.reply_topic = topics.render("reply", prefix, _topic_safe(self.client_id))
        self.online_topic = topics.render("online", prefix)
        self._client: aiomqtt.Client | None = None
        self._entered = False
        self._dispatcher: asyncio.Task[None] | None = None
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._online: bool | None = None  # None: the tool never said; treated as online
        self._lost: str | None = None
        self._ids = itertools.count(1)
        self._id_prefix = secrets.token_hex(3)

    # --- link --------------------------------------------------------------------------------
    def _tls_context(self) -> ssl.SSLContext | None:
        if not self.address.tls:
            return None
        return ssl.create_default_context(cafile=self.address.ca_file)

    async def _open(self) -> None:
        self._online, self._lost = None, None
        a = self.address
        client = aiomqtt.Client(
            a.host,
            a.port,
            identifier=self.client_id,
            username=a.username,
            password=a.password.resolve(f"{self.tool}: mqtt password") if a.password else None,
            tls_context=self._tls_context(),
            socket_options=NODELAY,
            keepalive=KEEPALIVE_S,
            timeout=max(self.timeouts.connect_s, self.timeouts.request_s),
        )
        client.pending_calls_threshold = 10_000  # many concurrent requests are normal here
        self._client = client
        try:
            await client.__aenter__()
            self._entered = True
            subs: list[tuple[str, int]] = [
                (self.online_topic, 1),
                (self.reply_topic, self.mqtt_profile.qos),
            ]
            await client.subscribe(subs)
        except aiomqtt.MqttError as exc:
            raise ToolConnectionError(
                self.tool, f"MQTT broker {a.host}:{a.port}: {exc}"
            ) from exc
        self._dispatcher = asyncio.get_running_loop().create_task(
            self._dispatch(client), name=f"mqtt-dispatch-{self.tool}"
        )

    async def _shutdown(self) -> None:
        task, self._dispatcher = self._dispatcher, None
        if task is not None:
            await cancel_until_done([task])
        self._fail_pending(lambda: ToolConnectionError(self.tool, "MQTT channel closed"))
        client, self._client = self._client, None
        entered, self._entered = self._entered, False
        if client is None:
            return
        try:
            if entered:
                async with asyncio.timeout(1.0):
                    await client.__aexit__(None, None, None)
            else:  # connect was interrupted: drop whatever half-open socket paho has
                client._client.disconnect()
        except (aiomqtt.MqttError, TimeoutError, OSError) as exc:
            self.log.debug("MQTT disconnect: %s", exc)
        consume_disconnect_error(client)

    # --- dispatcher --------------------------------------------------------------------------
    async def _dispatch(self, client: aiomqtt.Client) -> None:
        try:
            async for message in client.messages:
                topic = message.topic.value
                if topic == self.reply_topic:
                    self._on_reply(message.payload)
                elif topic == self.online_topic:
                    self._on_online(message.payload)
        except aiomqtt.MqttError as exc:
            self._lost = f"MQTT broker connection lost: {exc}"
            self.log.warning("%s", self._lost)
            self._fail_pending(lambda: ToolConnectionError(self.tool, self._lost or "lost"))

    def _on_reply(self, payload: object) -> None:
        doc = parse_reply(payload)
        if doc is None:  # no id to match: the oldest request is the one this answered
            oldest = next((f for f in self._pending.values() if not f.done()), None)
            if oldest is None:
                self.log.warning("garbled MQTT reply with nothing pending: %s", describe(payload))
            else:
                oldest.set_exception(
                    ProtocolError(self.tool, f"garbled MQTT reply: {describe(payload)}")
                )
            return
        fut = self._pending.get(doc["id"])
        if fut is None or fut.done():
            self.log.debug("late or foreign reply %s ignored", doc["id"])
            return
        fut.set_result(doc)

    def _on_online(self, payload: object) -> None:
        text = payload.decode(errors="replace") if isinstance(payload, bytes | bytearray) else ""
        text = text.strip().lower()
        self._online = {"online": True, "offline": False}.get(text)  # anything else: unknown
        if self._online is False:
            self.log.warning("tool announced itself offline")
            self._fail_pending(self._offline_error)

    def _offline_error(self) -> ToolOffline:
        return ToolOffline(self.tool, f"tool is offline ({self.online_topic} = offline)")

    def _fail_pending(self, error: Any) -> None:
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(error())

    # --- requests ----------------------------------------------------------------------------
    async def _request(self, cmd: str, args: Mapping[str, Any]) -> dict[str, Any]:
        client = self._client
        if client is None or self._lost is not None:
            raise ToolConnectionError(self.tool, self._lost or "MQTT channel not connected")
        if self._online is False:
            raise self._offline_error()
        rid = f"{self._id_prefix}-{next(self._ids)}"
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        payload = encode_request(rid, cmd, args, self.reply_topic)
        # The publish runs beside the wait: the reply may come before the PUBACK, and a lost
        # connection fails `fut` (the dispatcher sees it) while the PUBACK would never come.
        send = asyncio.ensure_future(
            client.publish(self.command_topic, payload, qos=self.mqtt_profile.qos)
        )
        send.add_done_callback(lambda t: self._sent(t, fut))
        try:
            doc = await fut
        finally:
            self._pending.pop(rid, None)
            if not send.done():
                send.cancel()
        return reply_values(self.tool, cmd, doc)

    def _sent(self, send: asyncio.Future[None], fut: asyncio.Future[dict[str, Any]]) -> None:
        if send.cancelled() or send.exception() is None or fut.done():
            return
        fut.set_exception(ToolConnectionError(self.tool, f"MQTT publish failed: {send.exception()}"))

    async def _read(self, names: Sequence[str]) -> dict[str, Value]:
        profile = self.mqtt_profile
        keys = [profile.key_of(n) for n in names]
        values = await self._request(READ_COMMAND, {"names": keys})
        missing = [k for k in keys if k not in values]
        if missing:
            raise ProtocolError(self.tool, f"read reply lacks {missing}")
        return {n: decode_value(self.tool, profile, n, values[k]) for n, k in zip(names, keys, strict=True)}

    async def _command(self, name: str, args: Mapping[str, Value]) -> None:
        declared = self.mqtt_profile.command_args(name)
        unknown = sorted(set(args) - set(declared))
        if unknown:
            raise ToolError(
                self.tool, f"command {name!r} takes {declared}, not {unknown}"
            )
        wire = {self.mqtt_profile.key_of(a): args[a] for a in declared if a in args}
        await self._request(name, wire)
