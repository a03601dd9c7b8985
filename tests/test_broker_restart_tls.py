"""The embedded broker restarts on its port even when closing its sessions outlasts the shutdown.

amqtt closes its listener only after closing every session. When that took longer than the shutdown
timeout (a loaded broker, in the fault campaign's broker_restart), the listener outlived the broker:
the restart could not bind, and clients queued in the dead listener's backlog until each TLS handshake
timed out, stalling the next run for minutes. The session cleanup is made to hang here, as it did."""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
import time
from pathlib import Path

import aiomqtt

from sim_tools.broker import EmbeddedBroker
from sim_tools.broker_auth import Credentials, throwaway_certificates


def _utf8(text: str) -> bytes:
    data = text.encode()
    return struct.pack(">H", len(data)) + data


def connect_and_go_deaf(port: int, ca: Path, user: str, password: str) -> ssl.SSLSocket:
    """A TLS MQTT session that connects, then never reads again (a hung peer)."""
    context = ssl.create_default_context(cafile=str(ca))
    sock = context.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5),
                               server_hostname="127.0.0.1")
    body = _utf8("MQTT") + bytes([4, 0xC2]) + struct.pack(">H", 60)
    body += _utf8("deaf-client") + _utf8(user) + _utf8(password)
    sock.sendall(bytes([0x10, len(body)]) + body)
    assert sock.recv(4)[:2] == b"\x20\x02"  # CONNACK
    return sock


async def test_restart_frees_the_port_despite_a_deaf_tls_client(tmp_path: Path) -> None:
    creds = Credentials(tmp_path / "secrets")
    secret = creds.generate("controller")
    ca, cert, key = throwaway_certificates(tmp_path / "secrets")
    broker = EmbeddedBroker(password_file=creds.amqtt_password_file(), certfile=cert, keyfile=key)
    port = await broker.start()
    password = secret.resolve("test")
    deaf = await asyncio.to_thread(connect_and_go_deaf, port, ca, "controller", password)
    amqtt, loop = broker._broker, broker._loop
    assert amqtt is not None and loop is not None

    async def hang(client_id: str) -> None:
        await asyncio.sleep(3600)

    loop.call_soon_threadsafe(setattr, amqtt, "_cleanup_session", hang)  # on the broker's own loop
    try:
        t0 = time.monotonic()
        await broker.stop()
        assert await broker.start() == port
        assert time.monotonic() - t0 < 20
        tls = ssl.create_default_context(cafile=str(ca))
        async with aiomqtt.Client("127.0.0.1", port, username="controller", password=password,
                                  tls_context=tls, timeout=5) as client:
            await client.publish("probe", b"1", qos=1)
    finally:
        deaf.close()
        await broker.stop()
