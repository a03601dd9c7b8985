"""The SECS-II codec against secsgem's (an independent implementation) in both directions, and its
refusal of malformed bytes (issue 13: the HSMS transport's message layer)."""

from __future__ import annotations

import pytest
import secsgem.secs.variables as sv
from hypothesis import given, settings
from hypothesis import strategies as st
from secsgem.secs.functions import SecsS01F02

from drivers.transports.secs2 import Item, SecsDecodeError, decode, encode

SECSGEM = {"U1": sv.U1, "U2": sv.U2, "U4": sv.U4, "U8": sv.U8, "I1": sv.I1, "I2": sv.I2, "I4": sv.I4,
           "I8": sv.I8, "F4": sv.F4, "F8": sv.F8, "BOOLEAN": sv.Boolean}
RANGES = {"U1": (0, 2**8 - 1), "U2": (0, 2**16 - 1), "U4": (0, 2**32 - 1), "U8": (0, 2**64 - 1),
          "I1": (-(2**7), 2**7 - 1), "I2": (-(2**15), 2**15 - 1), "I4": (-(2**31), 2**31 - 1),
          "I8": (-(2**63), 2**63 - 1)}


def numbers(fmt: str) -> st.SearchStrategy[list[object]]:
    if fmt in RANGES:
        lo, hi = RANGES[fmt]
        return st.lists(st.integers(lo, hi), min_size=1, max_size=5)
    if fmt == "BOOLEAN":
        return st.lists(st.booleans(), min_size=1, max_size=5)
    width = 32 if fmt == "F4" else 64  # secsgem refuses F8 values near the float maximum: stay below 1e300
    bound = 2.0**127 if width == 32 else 1e300
    return st.lists(st.floats(-bound, bound, allow_nan=False, width=width), min_size=1, max_size=5)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(SECSGEM)).flatmap(lambda f: st.tuples(st.just(f), numbers(f))))
def test_numbers_match_secsgem_both_ways(case: tuple[str, list[object]]) -> None:
    fmt, values = case
    theirs = SECSGEM[fmt](values if len(values) > 1 else values[0]).encode()
    assert encode(Item(fmt, values)) == theirs
    assert decode(theirs) == Item(fmt, values)


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=300),
       st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=20),
       st.binary(max_size=300))
def test_text_binary_and_lists_match_secsgem(text: str, rev: str, data: bytes) -> None:
    assert encode(Item.ascii(text)) == sv.String(text).encode()
    text = text[:20]  # MDLN is at most 20 characters (E5)
    assert encode(Item.binary(data)) == sv.Binary(data).encode()
    assert decode(sv.Binary(data).encode()).value == data
    s1f2 = SecsS01F02([text, rev]).encode()  # a list of MDLN and SOFTREV, as a tool answers S1F1
    assert encode(Item.list(Item.ascii(text), Item.ascii(rev))) == s1f2
    assert decode(s1f2) == Item.list(Item.ascii(text), Item.ascii(rev))


def test_long_items_use_more_length_bytes() -> None:
    big = Item.binary(bytes(70000))
    assert encode(big)[0] & 0b11 == 3 and decode(encode(big)) == big
    assert encode(Item.ascii("x" * 300))[0] & 0b11 == 2


@pytest.mark.parametrize(("data", "said"), [
    (b"", "data ends"),
    (b"\x00", "not a SECS-II format"),  # no length bytes
    (b"\xfd\x01\x00", "not a SECS-II format"),  # unknown format code
    (b"\xb1\x08\x00\x00\x00\x01", "claims 8 bytes"),  # truncated U4
    (b"\xb1\x03\x00\x00\x01", "whole number"),  # 3 bytes of U4
    (b"\x01\x02\x41\x01a", "data ends"),  # a list promising two items holds one
    (b"\x41\x01ab", "after the item"),  # trailing garbage
    (b"\x01\x01" * 100 + b"\x01\x00", "nested deeper"),
])
def test_malformed_bytes_are_a_decode_error_with_the_offset(data: bytes, said: str) -> None:
    with pytest.raises(SecsDecodeError, match=said):
        decode(data)


def test_values_that_cannot_be_encoded_are_refused() -> None:
    with pytest.raises(ValueError, match="finite"):
        encode(Item("F8", [float("nan")]))
    with pytest.raises(ValueError, match="not one of"):
        Item("U3", [1])
