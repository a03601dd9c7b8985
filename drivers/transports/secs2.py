"""SECS-II (SEMI E5) items: the data of every SECS message, encoded and decoded by hand.

An item is an `Item(format, value)`: `L` holds a list of items, `A` a str, `B` bytes, `BOOLEAN` a
list of bools, and the numeric formats (`I1`..`I8`, `U1`..`U8`, `F4`, `F8`) a list of numbers. The
wire form is a format byte (format code << 2 | how many length bytes, 1-3), the length (bytes, or
items for a list) and the data, big-endian. Decoding never trusts a length: a truncated, oversized or
malformed item raises `SecsDecodeError` naming the offset, which HSMS answers with S9F7.
Written by hand, not taken from secsgem: the asyncio transport cannot use secsgem's threads, and the
codec is tested against secsgem's encoder in both directions (tests/test_secs2.py).
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Any

FORMATS: dict[str, int] = {
    "L": 0o00, "B": 0o10, "BOOLEAN": 0o11, "A": 0o20, "J": 0o21,
    "I8": 0o30, "I1": 0o31, "I2": 0o32, "I4": 0o34, "F8": 0o40, "F4": 0o44,
    "U8": 0o50, "U1": 0o51, "U2": 0o52, "U4": 0o54,
}
CODES = {code: name for name, code in FORMATS.items()}
NUMERIC: dict[str, str] = {  # struct format of one value
    "I1": "b", "I2": "h", "I4": "i", "I8": "q", "U1": "B", "U2": "H", "U4": "I", "U8": "Q",
    "F4": "f", "F8": "d",
}
MAX_LENGTH = 0xFFFFFF  # three length bytes
MAX_DEPTH = 64  # nesting a real message never needs; deeper is treated as malformed


class SecsDecodeError(ValueError):
    """Bytes that are not a well-formed SECS-II item."""


@dataclass(frozen=True)
class Item:
    format: str
    value: Any

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ValueError(f"SECS-II format {self.format!r} is not one of {sorted(FORMATS)}")

    # --- convenience constructors ----------------------------------------------------------------
    @staticmethod
    def list(*items: Item) -> Item:
        return Item("L", list(items))

    @staticmethod
    def ascii(text: str) -> Item:
        return Item("A", text)

    @staticmethod
    def u4(*values: int) -> Item:
        return Item("U4", list(values))

    @staticmethod
    def binary(data: bytes) -> Item:
        return Item("B", bytes(data))

    def scalar(self) -> Any:
        """The single value of a one-element item (what most data items are)."""
        if self.format in ("A", "J", "L"):
            return self.value
        if isinstance(self.value, bytes | list) and len(self.value) == 1:
            return self.value[0]
        raise ValueError(f"{self.format} item holds {len(self.value)} values, not one")


def _header(fmt: str, length: int) -> bytes:
    if length > MAX_LENGTH:
        unit = "items" if fmt == "L" else "bytes"
        raise ValueError(f"SECS-II item of {length} {unit} exceeds 3 length bytes")
    size = 1 if length <= 0xFF else 2 if length <= 0xFFFF else 3
    return bytes([(FORMATS[fmt] << 2) | size]) + length.to_bytes(size, "big")


def encode(item: Item) -> bytes:
    fmt, value = item.format, item.value
    if fmt == "L":
        return _header(fmt, len(value)) + b"".join(encode(i) for i in value)
    if fmt in ("A", "J"):
        data = value.encode("latin-1" if fmt == "A" else "shift_jis")
    elif fmt == "B":
        data = bytes(value)
    elif fmt == "BOOLEAN":
        data = bytes(1 if v else 0 for v in value)
    else:
        if fmt.startswith("F") and any(not math.isfinite(v) for v in value):
            raise ValueError(f"{fmt} values must be finite, got {value}")
        data = struct.pack(f">{len(value)}{NUMERIC[fmt]}", *value)
    return _header(fmt, len(data)) + data


def decode(data: bytes) -> Item:
    """One item filling `data` exactly."""
    item, used = decode_at(data, 0)
    if used != len(data):
        raise SecsDecodeError(f"{len(data) - used} byte(s) after the item at offset {used}")
    return item


def decode_at(data: bytes, pos: int, depth: int = 0) -> tuple[Item, int]:
    """The item at `pos` and the offset just after it."""
    if depth > MAX_DEPTH:
        raise SecsDecodeError(f"items nested deeper than {MAX_DEPTH} at offset {pos}")
    if pos >= len(data):
        raise SecsDecodeError(f"item header expected at offset {pos}, data ends")
    fmt_byte = data[pos]
    code, size = fmt_byte >> 2, fmt_byte & 0b11
    fmt = CODES.get(code)
    if fmt is None or size == 0:
        raise SecsDecodeError(f"format byte {fmt_byte:#04x} at offset {pos} is not a SECS-II format")
    if pos + 1 + size > len(data):
        raise SecsDecodeError(f"length of the {fmt} item at offset {pos} runs past the data")
    length = int.from_bytes(data[pos + 1:pos + 1 + size], "big")
    pos += 1 + size
    if fmt == "L":
        items = []
        for _ in range(length):
            item, pos = decode_at(data, pos, depth + 1)
            items.append(item)
        return Item("L", items), pos
    end = pos + length
    if end > len(data):
        raise SecsDecodeError(f"{fmt} item at offset {pos} claims {length} bytes, {len(data) - pos} left")
    raw = data[pos:end]
    try:
        return Item(fmt, _value(fmt, raw)), end
    except (struct.error, UnicodeDecodeError) as exc:
        raise SecsDecodeError(f"{fmt} item at offset {pos}: {exc}") from None


def _value(fmt: str, raw: bytes) -> Any:
    if fmt == "A":
        return raw.decode("latin-1")
    if fmt == "J":
        return raw.decode("shift_jis")
    if fmt == "B":
        return bytes(raw)
    if fmt == "BOOLEAN":
        return [b != 0 for b in raw]
    width = struct.calcsize(NUMERIC[fmt])
    if len(raw) % width:
        raise struct.error(f"{len(raw)} bytes is not a whole number of {width}-byte values")
    return list(struct.unpack(f">{len(raw) // width}{NUMERIC[fmt]}", raw))
