"""MQTT wire codec of the driver: JSON values to profile types, reply checks, garbage tolerance."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.errors import CommandRejected, ProtocolError
from drivers.profiles import MqttProfile, load_profile
from drivers.profiles.mqtt import MqttVariable
from drivers.transports.mqtt import decode_value, encode_request, parse_reply, reply_values


def _profile() -> MqttProfile:
    profile = load_profile("sputterer-mqtt")
    assert isinstance(profile, MqttProfile)
    return profile


PROFILE = _profile()
json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text()
json_values = st.recursive(
    json_scalars, lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner), max_leaves=8
)


def values_of(var: MqttVariable) -> st.SearchStrategy[Any]:
    if var.type == "float":
        return st.floats(allow_nan=False)
    if var.type == "int":
        return st.integers(-(2**63), 2**63)
    if var.type == "bool":
        return st.booleans()
    if var.type == "enum":
        return st.sampled_from(sorted(PROFILE.enum_table(var.enum or "")))
    return st.text()


named_values = st.sampled_from(sorted(PROFILE.variables)).flatmap(
    lambda n: st.tuples(st.just(n), values_of(PROFILE.variables[n]))
)


@given(named_values)
def test_values_round_trip_through_json(pair: tuple[str, Any]) -> None:
    name, value = pair
    wire = json.loads(json.dumps({"v": value}))["v"]
    back = decode_value("t", PROFILE, name, wire)
    assert back == value and type(back) is type(value)


@given(st.sampled_from(sorted(PROFILE.variables)), json_values)
def test_any_json_value_decodes_or_is_protocol_error(name: str, raw: Any) -> None:
    try:
        value = decode_value("t", PROFILE, name, raw)
    except ProtocolError:
        return
    assert isinstance(value, bool | int | float | str)


@given(st.binary() | st.text())
def test_garbage_payload_never_raises(payload: bytes | str) -> None:
    doc = parse_reply(payload)
    assert doc is None or isinstance(doc["id"], str)


@given(st.dictionaries(st.sampled_from(["id", "ok", "values", "error"]), json_values))
def test_reply_fields_are_checked(doc: dict[str, Any]) -> None:
    try:
        values = reply_values("t", "read", doc)
    except (ProtocolError, CommandRejected):
        return
    assert doc["ok"] is True and isinstance(values, dict)


@pytest.mark.parametrize(
    ("name", "raw", "expected"),
    [
        ("state", "EXECUTING", "EXECUTING"),
        ("state", 4, "EXECUTING"),  # a wire code is accepted too
        ("job_id", 12.0, 12),
        ("power_w", 2000, 2000.0),
        ("door_closed", 1, True),
    ],
)
def test_lenient_but_exact_conversions(name: str, raw: Any, expected: Any) -> None:
    value = decode_value("t", PROFILE, name, raw)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize(
    ("name", "raw", "match"),
    [
        ("state", "RUNNING", r"not a member of enum state"),
        ("state", 99, r"not a member of enum state"),
        ("job_id", 1.5, r"not a valid int"),
        ("power_w", True, r"not a valid float"),
        ("door_closed", "yes", r"not a valid bool"),
        ("material", 3, r"not a valid str"),
    ],
)
def test_wrong_types_are_protocol_errors(name: str, raw: Any, match: str) -> None:
    with pytest.raises(ProtocolError, match=match):
        decode_value("t", PROFILE, name, raw)


def test_reply_outcomes() -> None:
    assert reply_values("t", "read", {"id": "1", "ok": True, "values": {"a": 1}}) == {"a": 1}
    assert reply_values("t", "start", {"id": "1", "ok": True}) == {}
    with pytest.raises(CommandRejected, match="start refused: 1 busy"):
        reply_values("t", "start", {"id": "1", "ok": False, "error": "1 busy"})
    with pytest.raises(ProtocolError):
        reply_values("t", "read", {"id": "1", "ok": True})
    with pytest.raises(ProtocolError):
        reply_values("t", "start", {"id": "1", "ok": False})
    assert parse_reply(b'{"ok": true}') is None  # no id: cannot be matched


def test_request_layout() -> None:
    doc = json.loads(encode_request("x-1", "read", {"names": ["state"]}, "p/reply/c"))
    assert doc == {"id": "x-1", "cmd": "read", "args": {"names": ["state"]}, "reply_to": "p/reply/c"}
