"""Frame faults shared by the Modbus TCP and RTU front ends."""

from __future__ import annotations


def garble(frame: bytes, rtu: bool = False) -> bytes:
    """Corrupt a reply like a bad line does: TCP gets a bad MBAP protocol id, RTU a bad CRC.

    Lengths stay intact so the receiver sees a complete but invalid frame, not a short one.
    """
    if len(frame) < 5:
        return bytes(b ^ 0xFF for b in frame)
    if rtu:
        return frame[:3] + bytes(b ^ 0x5A for b in frame[3:])
    return frame[:2] + bytes(b ^ 0x5A for b in frame[2:4]) + frame[4:]
