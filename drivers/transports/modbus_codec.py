"""Modbus register codec and read planner, shared by the driver channel and the emulator server.

Engineering value = raw * scale + offset, raw being the integer/float the register words hold.
Both sides use this one module, so a profile means the same thing to the driver and the emulator;
anything that cannot be represented (out of range, NaN, unknown enum code) is a ValueError, which
the driver reports as ProtocolError and the emulator as a device failure.
"""

from __future__ import annotations

import functools
import math
import operator
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from drivers.profiles.base import Value
from drivers.profiles.modbus import ModbusProfile, ModbusTable, ModbusVariable

_FORMAT = {"uint16": ">H", "int16": ">h", "uint32": ">I", "int32": ">i", "float32": ">f"}
_RANGE = {
    "uint16": (0, 0xFFFF),
    "int16": (-0x8000, 0x7FFF),
    "uint32": (0, 0xFFFFFFFF),
    "int32": (-0x80000000, 0x7FFFFFFF),
}
BIT_TABLES: tuple[ModbusTable, ...] = ("coil", "discrete")
# Modbus limits per request: 125 registers (FC3/FC4), 2000 bits (FC1/FC2).
MAX_COUNT = {"coil": 2000, "discrete": 2000, "input": 125, "holding": 125}
DEFAULT_MAX_GAP = 8


@functools.lru_cache(maxsize=256)
def _decimals(*numbers: float) -> int:
    """Decimals that scale/offset can produce, so 2000 * 0.1 reads 200.0, not 200.00000000000003."""
    places = 0
    for n in numbers:
        exp = Decimal(repr(float(n))).as_tuple().exponent
        places = max(places, -exp if isinstance(exp, int) else 0)
    return min(places, 12)


def _is_plain(var: ModbusVariable) -> bool:
    return var.scale == 1.0 and var.offset == 0.0


def encode(profile: ModbusProfile, var: ModbusVariable, value: Value) -> list[int]:
    """Neutral value -> register words (bits as [0] / [1]) in wire order."""
    if var.type == "bool":
        if not isinstance(value, bool | int) or value not in (0, 1):
            raise ValueError(f"bit variable needs a bool, got {value!r}")
        return [int(bool(value))]
    if var.enum is not None:
        if isinstance(value, bool) or not isinstance(value, str):
            raise ValueError(f"enum {var.enum} needs a member name, got {value!r}")
        value = profile.encode_enum(var, value)
    if isinstance(value, str):
        raise ValueError(f"{var.type} variable needs a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"non-finite value {value!r}")
    raw = (number - var.offset) / var.scale
    if var.type == "float32":
        try:
            data = struct.pack(">f", raw)
        except OverflowError:
            raise ValueError(f"{value!r} does not fit a float32") from None
    else:
        lo, hi = _RANGE[var.type]
        integer = round(raw)
        if not lo <= integer <= hi:
            raise ValueError(f"{value!r} (raw {integer}) is outside {var.type} [{lo}, {hi}]")
        data = struct.pack(_FORMAT[var.type], integer)
    words = [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
    if len(words) == 2 and profile.word_order_of(var) == "little":
        words.reverse()
    return words


Decoder = Callable[[Sequence[int]], Value]


def compile_decoder(profile: ModbusProfile, var: ModbusVariable) -> Decoder:
    """A decoder specialised for one variable: words at its offset -> neutral value.

    status() decodes a dozen variables per poll; resolving type, word order, enum and scale once
    here instead of on every call keeps the driver's cost small next to the round trip.
    """
    if var.type == "bool":
        return lambda ws: bool(ws[0])
    raw: Callable[[Sequence[int]], int | float]
    if var.type == "uint16":
        raw = operator.itemgetter(0)
    elif var.type == "int16":
        raw = lambda ws: ws[0] - 0x10000 if ws[0] & 0x8000 else ws[0]  # noqa: E731
    else:
        unpack = struct.Struct(_FORMAT[var.type]).unpack
        hi, lo = (1, 0) if profile.word_order_of(var) == "little" else (0, 1)
        raw = lambda ws: unpack(((ws[hi] << 16) | ws[lo]).to_bytes(4, "big"))[0]  # noqa: E731
    if var.enum is not None:
        table = profile.enum_table(var.enum)
        members = {code: member for member, code in table.items()}

        def enum_member(ws: Sequence[int]) -> Value:
            code = raw(ws)
            if code not in members:
                raise ValueError(f"code {code} is not in enum {var.enum}: {table}")
            return members[code]

        return enum_member
    if var.type == "float32":
        scale, offset = var.scale, var.offset

        def real(ws: Sequence[int]) -> Value:
            x = raw(ws)
            if not math.isfinite(x):
                raise ValueError(f"non-finite float32 {x!r}")
            return x if scale == 1.0 and offset == 0.0 else x * scale + offset

        return real
    if _is_plain(var):
        return raw
    scale, offset, places = var.scale, var.offset, _decimals(var.scale, var.offset)
    return lambda ws: round(raw(ws) * scale + offset, places)


def decode(profile: ModbusProfile, var: ModbusVariable, words: Sequence[int]) -> Value:
    """Register words (or one bit) in wire order -> neutral value, checking the words first."""
    if len(words) != var.width:
        raise ValueError(f"{var.type} needs {var.width} word(s), got {len(words)}")
    for w in words:
        if not 0 <= w <= 0xFFFF:
            raise ValueError(f"register word {w!r} is not 16 bit")
    return compile_decoder(profile, var)(words)


@dataclass(frozen=True)
class Block:
    """One read request: `count` registers/bits of `table` from `start`, holding `names`."""

    table: ModbusTable
    start: int
    count: int
    names: tuple[str, ...]

    @property
    def bits(self) -> bool:
        return self.table in BIT_TABLES


def plan_blocks(
    profile: ModbusProfile, names: Iterable[str], max_gap: int = DEFAULT_MAX_GAP
) -> list[Block]:
    """Group variables into as few contiguous reads per table as possible.

    Reading a few unused registers in a gap is cheaper than another round trip, so variables up
    to `max_gap` registers apart share a request (the emulator serves its whole range readable).
    """
    ordered = sorted(
        dict.fromkeys(names), key=lambda n: (profile.variables[n].table, profile.variables[n].address)
    )
    blocks: list[Block] = []
    cur: list[str] = []
    table: ModbusTable | None = None
    start = end = 0
    for name in ordered:
        var = profile.variables[name]
        var_end = var.address + var.width
        fits = (
            table == var.table
            and var.address <= end + max_gap
            and max(end, var_end) - start <= MAX_COUNT[var.table]
        )
        if not fits:
            if table is not None:
                blocks.append(Block(table, start, end - start, tuple(cur)))
            table, start, end, cur = var.table, var.address, var_end, []
        cur.append(name)
        end = max(end, var_end)
    if table is not None:
        blocks.append(Block(table, start, end - start, tuple(cur)))
    return blocks


class BlockDecoder:
    """Decodes planned blocks with per-variable decoders compiled once per profile."""

    def __init__(self, profile: ModbusProfile) -> None:
        self.profile = profile
        self._layouts: dict[Block, list[tuple[str, int, int, Decoder]]] = {}

    def _layout(self, block: Block) -> list[tuple[str, int, int, Decoder]]:
        layout = self._layouts.get(block)
        if layout is None:
            layout = self._layouts[block] = [
                (n, v.address - block.start, v.address - block.start + v.width,
                 compile_decoder(self.profile, v))
                for n in block.names
                for v in (self.profile.variables[n],)
            ]
        return layout

    def decode(self, block: Block, data: Sequence[int]) -> dict[str, Value]:
        """Decode every variable of a block from the words/bits a read returned (16-bit words)."""
        if len(data) < block.count:
            raise ValueError(f"{block.table} read of {block.count} returned {len(data)} values")
        return {name: fn(data[a:b]) for name, a, b, fn in self._layout(block)}


def decode_block(profile: ModbusProfile, block: Block, data: Sequence[int]) -> dict[str, Value]:
    """One-off form of BlockDecoder.decode."""
    return BlockDecoder(profile).decode(block, data)


def write_runs(
    profile: ModbusProfile, values: Mapping[str, Value]
) -> list[tuple[ModbusTable, int, list[int]]]:
    """Encode writable variables and merge exactly adjacent ones into single write requests.

    Only gap-free neighbours merge: a merged write must never touch a register nobody asked to set.
    Order follows the register map, so a multi-register value is always written whole.
    """
    encoded = sorted(
        (profile.variables[n].table, profile.variables[n].address,
         encode(profile, profile.variables[n], v))
        for n, v in values.items()
    )
    runs: list[tuple[ModbusTable, int, list[int]]] = []
    for table, address, words in encoded:
        if table not in ("coil", "holding"):
            raise ValueError(f"{table} is read-only")
        if runs and runs[-1][0] == table and runs[-1][1] + len(runs[-1][2]) == address:
            runs[-1][2].extend(words)
        else:
            runs.append((table, address, list(words)))
    return runs
