"""MQTT benchmark: `Sputterer.status()` through the driver vs the same read request over plain aiomqtt.

Both sides talk to the same emulator through the same broker (embedded amqtt, or mosquitto if
installed), with TCP_NODELAY, QoS 1, and the same JSON read request; the raw client also parses
the JSON reply. Measured in alternating blocks so broker warm-up and drift hit both equally.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import socket
import tempfile
from pathlib import Path
from typing import Any

import aiomqtt

from benchmarks._timing import compare
from drivers.addresses import MqttAddress
from drivers.channel import Timeouts
from drivers.kinds.sputterer import Sputterer
from drivers.profiles import MqttProfile, load_profile
from drivers.transports.mqtt import MqttChannel
from sim_tools.broker import EmbeddedBroker, MosquittoBroker
from sim_tools.clock import VirtualClock
from sim_tools.model import EmulatedTool
from sim_tools.physics.sputterer import SputtererPhysics
from sim_tools.servers.mqtt import MqttToolServer

NODELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]


class _Raw:
    """A plain aiomqtt requester doing exactly the driver's read: publish, wait for the reply."""

    def __init__(self, client: aiomqtt.Client, profile: MqttProfile, prefix: str) -> None:
        self.client = client
        self.cmd_topic = profile.topics.render("command", prefix)
        self.reply_topic = profile.topics.render("reply", prefix, "raw-bench")
        self.names = [profile.key_of(n) for n in _status_names(profile, prefix)]
        self.seq = 0

    async def read(self) -> dict[str, Any]:
        self.seq += 1
        rid = str(self.seq)
        req = {"id": rid, "cmd": "read", "args": {"names": self.names}, "reply_to": self.reply_topic}
        await self.client.publish(self.cmd_topic, json.dumps(req), qos=1)
        async for message in self.client.messages:
            if message.topic.value == self.reply_topic:
                doc = json.loads(message.payload)
                if doc.get("id") == rid:
                    return dict(doc["values"])
        raise ConnectionError("broker connection lost")


def _status_names(profile: MqttProfile, prefix: str) -> list[str]:
    """The variables Tool.status() reads, so the raw side asks for the very same ones."""
    channel = MqttChannel("bench", profile, MqttAddress(prefix=prefix))
    return list(Sputterer("bench", channel)._status_names)


async def measure(n: int, broker: str = "amqtt") -> dict[str, Any]:
    """Mean ms per status() through the driver and per raw request/reply, and their ratio."""
    profile = load_profile("sputterer-mqtt")
    assert isinstance(profile, MqttProfile)
    with tempfile.TemporaryDirectory(prefix="waferline-bench-") as tmp:
        brk: EmbeddedBroker | MosquittoBroker = (
            EmbeddedBroker() if broker == "amqtt" else MosquittoBroker(Path(tmp))
        )
        port = await brk.start()
        prefix = f"waferline/bench/{secrets.token_hex(3)}/sputter1"
        address = MqttAddress(prefix=prefix, port=port)
        emu = EmulatedTool("sputter1", SputtererPhysics(), VirtualClock(20000))
        server = MqttToolServer(emu, profile, address)
        channel = MqttChannel("sputter1", profile, address, Timeouts(request_s=5))
        tool = Sputterer("sputter1", channel, time_scale=20000)
        try:
            await server.start()
            await tool.connect()
            async with aiomqtt.Client("127.0.0.1", port, socket_options=NODELAY) as client:
                raw = _Raw(client, profile, prefix)
                await client.subscribe(raw.reply_topic, qos=1)
                result = await compare(f"mqtt ({broker})", tool.status, raw.read, n)
        finally:
            await tool.close()
            await server.stop()
            await emu.close()
            await brk.stop()
    return result


async def measure_all(n: int) -> list[dict[str, Any]]:
    """amqtt always; mosquitto too when its binary is installed."""
    results = [await measure(n, "amqtt")]
    if MosquittoBroker.available():
        results.append(await measure(n, "mosquitto"))
    return results


if __name__ == "__main__":
    for row in asyncio.run(measure_all(300)):
        print(json.dumps(row))
