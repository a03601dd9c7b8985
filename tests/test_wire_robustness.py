"""The emulators on the wire (issue 11.6), each sent over the real protocol by a raw peer:
pipelined Modbus TCP requests, Modbus exception replies (TCP and RTU), RTU resynchronisation after
stray bytes, and an MQTT command whose reply_to is a wildcard."""

from __future__ import annotations

import asyncio
import json
import os
import struct
import termios
import tty
from pathlib import Path

import aiomqtt
import pytest
from pymodbus.framer import FramerRTU

from drivers.kinds.sputterer import Sputterer
from drivers.transports.mqtt import NODELAY
from sim_tools.servers.modbus import ModbusToolServer
from tests.fixtures.mqtt import Broker, SputtererRig, next_on


def mbap(tid: int, pdu: bytes, unit: int = 1) -> bytes:
    return struct.pack(">HHHB", tid, 0, len(pdu) + 1, unit) + pdu


def read_holding(address: int, count: int) -> bytes:
    return struct.pack(">BHH", 3, address, count)


async def tcp_replies(server: ModbusToolServer, packet: bytes, n: int) -> dict[int, bytes]:
    """Send `packet` in one write; collect `n` replies as {transaction id: PDU}."""
    assert server.live is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", server.live.port)  # type: ignore[union-attr]
    replies: dict[int, bytes] = {}
    try:
        writer.write(packet)
        await writer.drain()
        async with asyncio.timeout(5):
            while len(replies) < n:
                head = await reader.readexactly(7)
                tid, _, length, _ = struct.unpack(">HHHB", head)
                assert tid not in replies, f"transaction {tid} answered twice"
                replies[tid] = await reader.readexactly(length - 1)
    finally:
        writer.close()
    return replies


@pytest.mark.parametrize("n", [2, 5, 20, 200])
async def test_modbus_tcp_answers_every_pipelined_request(bonder_server: ModbusToolServer, n: int) -> None:
    packet = b"".join(mbap(tid, read_holding(0, 4)) for tid in range(1, n + 1))
    replies = await tcp_replies(bonder_server, packet, n)
    assert sorted(replies) == list(range(1, n + 1))
    assert all(pdu[:2] == b"\x03\x08" for pdu in replies.values())


async def test_modbus_tcp_exception_replies_in_a_pipeline(bonder_server: ModbusToolServer) -> None:
    packet = (mbap(1, b"\x41\x00\x00") + mbap(2, read_holding(0, 0)) + mbap(3, read_holding(0, 200))
              + mbap(4, read_holding(0, 2)))
    replies = await tcp_replies(bonder_server, packet, 4)
    assert replies[1] == b"\xc1\x01"  # ILLEGAL FUNCTION
    assert replies[2] == b"\x83\x03" and replies[3] == b"\x83\x03"  # ILLEGAL DATA VALUE (count)
    assert replies[4][:2] == b"\x03\x04"


def rtu(unit: int, pdu: bytes) -> bytes:
    body = bytes([unit]) + pdu
    return body + FramerRTU.compute_CRC(body).to_bytes(2, "big")


async def rtu_exchange(device: str, data: bytes, replies: int) -> list[bytes]:
    """Write `data` to the emulator's pty; read `replies` RTU replies (by their CRC)."""
    fd = os.open(device, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    tty.setraw(fd)
    termios.tcflush(fd, termios.TCIOFLUSH)
    buf, frames = bytearray(), []
    try:
        os.write(fd, data)
        async with asyncio.timeout(5):
            while len(frames) < replies:
                await asyncio.sleep(0.005)
                try:
                    buf += os.read(fd, 1024)
                except BlockingIOError:
                    continue
                for size in range(5, len(buf) + 1):
                    body = bytes(buf[:size - 2])
                    if FramerRTU.compute_CRC(body) == int.from_bytes(buf[size - 2:size], "big"):
                        frames.append(bytes(buf[:size]))
                        del buf[:size]
                        break
    finally:
        os.close(fd)
    return frames


async def test_modbus_rtu_exception_replies(bonder_rtu_server: ModbusToolServer) -> None:
    device = bonder_rtu_server.live.device  # type: ignore[union-attr]
    illegal_function = await rtu_exchange(device, rtu(1, b"\x41\x00\x00"), 1)
    assert illegal_function == [rtu(1, b"\xc1\x01")]
    bad_count = await rtu_exchange(device, rtu(1, read_holding(0, 0)), 1)
    assert bad_count == [rtu(1, b"\x83\x03")]


@pytest.mark.parametrize("stray", [b"\x00", b"\xff\x13", b"\x01\x03\x00", b"\xc3\x28\xa5\x85\xf9\xa0\x11"])
async def test_modbus_rtu_resynchronises_after_stray_bytes(
    bonder_rtu_server: ModbusToolServer, stray: bytes
) -> None:
    device = bonder_rtu_server.live.device  # type: ignore[union-attr]
    request = rtu(1, read_holding(0, 2))
    replies = await rtu_exchange(device, stray + request + request, 2)
    assert len(replies) == 2 and all(r[:3] == b"\x01\x03\x04" for r in replies)


async def test_mqtt_wildcard_reply_to_is_refused_and_the_session_lives(
    sputterer_rig: SputtererRig, broker: Broker, sputterer: Sputterer
) -> None:
    prefix = sputterer_rig.address.prefix
    connections = sputterer_rig.server.connections
    async with aiomqtt.Client(broker.host, broker.port, socket_options=NODELAY) as raw:
        await raw.subscribe(f"{prefix}/events", qos=1)
        for i, reply_to in enumerate([f"{prefix}/reply/+", f"{prefix}/#", "#", "a/+/b"] * 5):
            cmd = {"id": f"w{i}", "cmd": "read", "args": {"names": ["state"]}, "reply_to": reply_to}
            await raw.publish(f"{prefix}/cmd", json.dumps(cmd), qos=1)
            if i < 4:
                refusal = await next_on(raw, f"{prefix}/events")
                assert refusal["event"] == "refused" and refusal["id"] == f"w{i}"
                assert "is not a topic" in refusal["error"]
            assert (await sputterer.status()).state.value == "IDLE"
    assert sputterer_rig.server.connections == connections  # the emulator's session never dropped


def test_rtu_splitter_is_not_fooled_by_a_frame_split_over_reads(tmp_path: Path) -> None:
    from sim_tools.servers.modbus_wire import RtuSplitter

    splitter, frame = RtuSplitter(), rtu(1, read_holding(0, 2))
    assert splitter.feed(frame[:3]) == [] and splitter.feed(frame[3:]) == [frame]
    assert splitter.feed(b"\x07") == [] and splitter.gap() == [] and not splitter.buf
