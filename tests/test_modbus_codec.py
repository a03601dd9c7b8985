"""Modbus codec and read planner: word order, scale/offset, enums, ranges, block grouping."""

from __future__ import annotations

import math
import struct
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.kinds.bonder import Bonder
from drivers.profiles import ModbusProfile
from drivers.profiles.modbus import ModbusVariable
from drivers.tool import CONTRACT_VARIABLES
from drivers.transports.modbus_codec import (
    Block,
    decode,
    decode_block,
    encode,
    plan_blocks,
    write_runs,
)


def profile(word_order: str = "big", /, **variables: dict[str, Any]) -> ModbusProfile:
    return ModbusProfile.model_validate(
        {"kind": "test", "transport": "modbus", "word_order": word_order,
         "variables": variables, "commands": {}}
    )


WORD = st.integers(0, 0xFFFF)
INT_TYPES = ("uint16", "int16", "uint32", "int32")


@given(st.sampled_from(INT_TYPES), st.sampled_from(["big", "little"]), st.lists(WORD, min_size=2, max_size=2))
def test_integer_words_round_trip(kind: str, order: str, words: list[int]) -> None:
    p = profile(order, v={"table": "holding", "address": 0, "type": kind})
    var = p.variables["v"]
    regs = words[: var.width]
    assert encode(p, var, decode(p, var, regs)) == regs


@given(st.floats(width=32, allow_nan=False, allow_infinity=False), st.sampled_from(["big", "little"]))
def test_float32_round_trip(value: float, order: str) -> None:
    p = profile(order, v={"table": "input", "address": 4, "type": "float32"})
    var = p.variables["v"]
    assert decode(p, var, encode(p, var, value)) == value


@given(st.floats(-3276.8, 3276.7))
def test_scaled_int16_quantises_to_half_a_step(value: float) -> None:
    p = profile(v={"table": "input", "address": 0, "type": "int16", "scale": 0.1})
    var = p.variables["v"]
    back = decode(p, var, encode(p, var, value))
    assert isinstance(back, float) and abs(back - value) <= 0.05 + 1e-9
    assert back == round(back, 1)  # no 200.00000000000003 on the neutral side


def test_scale_and_offset() -> None:
    p = profile(v={"table": "holding", "address": 0, "type": "uint16", "scale": 0.5, "offset": -40})
    var = p.variables["v"]
    assert encode(p, var, 25.0) == [130]
    assert decode(p, var, [130]) == 25.0


def test_word_order_of_32_bit_values() -> None:
    p = profile(
        "big",
        be={"table": "holding", "address": 0, "type": "uint32"},
        le={"table": "holding", "address": 2, "type": "uint32", "word_order": "little"},
    )
    assert encode(p, p.variables["be"], 0x12345678) == [0x1234, 0x5678]
    assert encode(p, p.variables["le"], 0x12345678) == [0x5678, 0x1234]
    pl = profile("little", v={"table": "input", "address": 0, "type": "int32"})
    assert encode(pl, pl.variables["v"], -2) == [0xFFFE, 0xFFFF]


def test_float32_words_match_ieee() -> None:
    p = profile(v={"table": "input", "address": 0, "type": "float32"})
    hi, lo = struct.unpack(">HH", struct.pack(">f", 1013.0))
    assert encode(p, p.variables["v"], 1013.0) == [hi, lo]


def test_enum_by_member_name(bonder_profile: ModbusProfile) -> None:
    state = bonder_profile.variables["state"]
    assert encode(bonder_profile, state, "IDLE") == [1]
    assert decode(bonder_profile, state, [4]) == "EXECUTING"
    with pytest.raises(ValueError, match="not in enum"):
        decode(bonder_profile, state, [99])
    with pytest.raises(ValueError):
        encode(bonder_profile, state, "SLEEPING")
    with pytest.raises(ValueError):
        encode(bonder_profile, state, 1)


@pytest.mark.parametrize(
    ("kind", "value"),
    [("uint16", -1), ("uint16", 65536), ("int16", 40000), ("uint32", -1), ("int32", 2**31),
     ("float32", math.nan), ("float32", math.inf), ("uint16", math.nan), ("float32", 1e39),
     ("uint16", "ten")],
)
def test_unrepresentable_values_are_value_errors(kind: str, value: Any) -> None:
    p = profile(v={"table": "holding", "address": 0, "type": kind})
    with pytest.raises(ValueError):
        encode(p, p.variables["v"], value)


def test_non_finite_float_on_the_wire_is_value_error() -> None:
    p = profile(v={"table": "input", "address": 0, "type": "float32"})
    with pytest.raises(ValueError, match="non-finite"):
        decode(p, p.variables["v"], [0x7FC0, 0x0000])


def test_bits() -> None:
    p = profile(v={"table": "discrete", "address": 3, "type": "bool"})
    var = p.variables["v"]
    assert var == ModbusVariable(table="discrete", address=3, type="bool")
    assert encode(p, var, True) == [1] and decode(p, var, [0]) is False


def test_bonder_status_is_one_read_per_table(bonder_profile: ModbusProfile) -> None:
    names = list(dict.fromkeys([*CONTRACT_VARIABLES, *Bonder.interlock_inputs, *Bonder.process_values]))
    blocks = plan_blocks(bonder_profile, names)
    assert {(b.table, b.start, b.count) for b in blocks} == {
        ("input", 0, 16), ("discrete", 0, 4), ("holding", 0, 2)
    }
    assert sorted(n for b in blocks for n in b.names) == sorted(names)


def test_planner_splits_on_large_gaps_and_request_limits() -> None:
    p = profile(
        a={"table": "input", "address": 0}, b={"table": "input", "address": 9},
        c={"table": "input", "address": 30}, d={"table": "input", "address": 200},
        e={"table": "coil", "address": 5, "type": "bool"},
    )
    blocks = plan_blocks(p, ["d", "c", "b", "a", "e"])
    assert [(b.table, b.start, b.count) for b in blocks] == [
        ("coil", 5, 1), ("input", 0, 10), ("input", 30, 1), ("input", 200, 1)
    ]
    wide = profile(**{f"v{i}": {"table": "holding", "address": i * 5} for i in range(40)})
    assert all(b.count <= 125 for b in plan_blocks(wide, list(wide.variables)))
    assert len(plan_blocks(wide, list(wide.variables))) == 2


def test_decode_block(bonder_profile: ModbusProfile) -> None:
    block = Block("input", 0, 8, ("state", "chuck_temp_c", "chamber_pressure_mbar"))
    hi, lo = struct.unpack(">HH", struct.pack(">f", 0.5))
    out = decode_block(bonder_profile, block, [4, 0, 1, 0, 1999, 0, hi, lo])
    assert out == {"state": "EXECUTING", "chuck_temp_c": 199.9, "chamber_pressure_mbar": 0.5}


def test_write_runs_merge_only_adjacent_registers(bonder_profile: ModbusProfile) -> None:
    runs = write_runs(
        bonder_profile,
        {"job_id": 70000, "temp_c": 200.0, "force_kn": 20.0, "hold_s": 600.0,
         "vacuum_mbar": 0.01, "ramp_c_per_min": 20.0},
    )
    hi, lo = struct.unpack(">HH", struct.pack(">f", 0.01))
    assert runs == [
        ("holding", 0, [1, 4464]),
        ("holding", 10, [2000, 2000, 0, 600, hi, lo, 200]),
    ]
    with pytest.raises(ValueError, match="read-only"):
        write_runs(bonder_profile, {"state": "IDLE"})
