"""Modbus requests off the wire as a real device takes them (pymodbus 3.16's server does not):

- TCP: every request of a segment is answered, in order. pymodbus answers only the first request of
  each received chunk and keeps one "last request" slot, so pipelined requests went unanswered.
- RTU: frames are found by their length and CRC. A byte that starts no valid frame is dropped alone
  (resynchronisation), and after an inter-frame gap (t3.5) with no frame the oldest byte goes.
  pymodbus dropped the whole buffer on any error, losing the valid frame behind one stray byte.
- A request the device cannot serve gets an exception reply, as the Modbus spec says: 01 ILLEGAL
  FUNCTION for an unknown function code, 03 ILLEGAL DATA VALUE for a bad count or byte count.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from pymodbus.constants import ExcCodes
from pymodbus.exceptions import ModbusIOException, NoSuchIdException
from pymodbus.framer import FramerRTU
from pymodbus.pdu import DecodePDU, ExceptionResponse, ModbusPDU

log = logging.getLogger(__name__)
_REQUESTS = DecodePDU(True)
FIXED_SIZE = {1: 8, 2: 8, 3: 8, 4: 8, 5: 8, 6: 8}  # unit, fc, 4 data bytes, CRC
BYTE_COUNTED = (15, 16)  # unit, fc, address, quantity, byte count at [6], data, CRC


def decode_request(pdu_bytes: bytes) -> ModbusPDU:
    """The request PDU, or the exception reply a device gives for it."""
    fc = pdu_bytes[0] if pdu_bytes else 0
    pdu = _REQUESTS.decode(pdu_bytes) if pdu_bytes else None
    if pdu is not None:
        return pdu
    code = ExcCodes.ILLEGAL_VALUE if fc in _REQUESTS.pdu_table else ExcCodes.ILLEGAL_FUNCTION
    return ExceptionResponse(fc & 0x7F, code)


def _crc_ok(frame: bytes | bytearray) -> bool:
    return len(frame) >= 4 and FramerRTU.check_CRC(bytes(frame[:-2]), int.from_bytes(frame[-2:], "big"))


class RtuSplitter:
    """Bytes in, whole request frames out (unit + PDU + CRC), resynchronising on garbage."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self.buf.extend(data)
        frames: list[bytes] = []
        while len(self.buf) >= 4:
            size = self._size()
            if size is None:  # unknown function: a frame is wherever the CRC first checks
                size = next((n for n in range(4, min(len(self.buf), 256) + 1) if _crc_ok(self.buf[:n])), 0)
                if not size:
                    break  # more bytes may come; the gap timer drops a byte if none do
            elif len(self.buf) < size:
                break
            elif not _crc_ok(self.buf[:size]):
                del self.buf[0]  # not a frame start: slide by one byte
                continue
            frames.append(bytes(self.buf[:size]))
            del self.buf[:size]
        return frames

    def gap(self) -> list[bytes]:
        """t3.5 passed with bytes pending and no frame: the oldest byte starts none."""
        if self.buf:
            del self.buf[0]
        return self.feed(b"")

    def _size(self) -> int | None:
        fc = self.buf[1]
        if fc in FIXED_SIZE:
            return FIXED_SIZE[fc]
        if fc in BYTE_COUNTED:
            return 9 + self.buf[6] if len(self.buf) >= 7 else 10**6
        return None


class TcpPipeline:
    """Replaces a pymodbus server connection's callback_data: answers every request of a chunk."""

    def __init__(self, handler: Any) -> None:
        self.handler = handler
        self.tasks: set[asyncio.Task[None]] = set()

    def callback_data(self, data: bytes, addr: tuple[Any, ...] | None = None) -> int:
        h, used = self.handler, 0
        while used < len(data):
            chunk = h.trace_packet(False, data[used:])  # link faults act here
            try:
                n, pdu = h.framer.handleFrame(chunk, 0, 0)
            except ModbusIOException as exc:  # a whole frame (MBAP + PDU) that we cannot serve
                n, pdu = min(len(chunk), 6 + int.from_bytes(chunk[4:6], "big")), None
                reply = decode_request(bytes(chunk[7:n]))
                reply.dev_id, reply.transaction_id = exc.dev_id or 0, exc.transaction_id or 0
                h.server_send(reply, addr)
            if n == 0:
                break
            used += n
            if pdu is not None:
                task = asyncio.get_running_loop().create_task(self._answer(pdu, addr))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
        return used

    async def _answer(self, pdu: ModbusPDU, addr: tuple[Any, ...] | None) -> None:
        """One request in a task of its own, so a request the tool never answers (a silence fault)
        holds up only itself; the datastore hook is synchronous otherwise, so replies keep order."""
        h = self.handler
        try:
            reply = await pdu.datastore_update(h.server.context, pdu.dev_id)
        except NoSuchIdException:
            return  # not our unit: a real device stays silent
        except Exception:
            log.exception("modbus request %s failed", pdu)
            reply = ExceptionResponse(pdu.function_code, ExcCodes.DEVICE_FAILURE)
        reply.transaction_id, reply.dev_id = pdu.transaction_id, pdu.dev_id
        h.server_send(reply, addr)
