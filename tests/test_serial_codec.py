"""Serial codec: templates format and parse back (hypothesis round trips), and fail loudly."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.profiles import SerialProfile, load_profile
from drivers.profiles.base import Value
from drivers.transports.serial_codec import FieldCodec, Template, codec_for


def _saw_profile() -> SerialProfile:
    profile = load_profile("dicing_saw-serial")
    assert isinstance(profile, SerialProfile)
    return profile


PROFILE = _saw_profile()
CODEC = codec_for(PROFILE)
TEMPLATES = [q.reply for q in CODEC.queries.values()] + [
    c.request for c in CODEC.commands.values()
]
LINE_TEXT = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=40
)
FAST = settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])


def values_for(field: FieldCodec) -> st.SearchStrategy[Any]:
    if field.type == "bool":
        return st.booleans()
    if field.type == "int":
        return st.integers(-(10**9), 10**9)
    if field.type == "float":
        return st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
    if field.type == "enum":
        assert field.members is not None
        return st.sampled_from(sorted(field.members))
    return LINE_TEXT


def tolerance(field: FieldCodec) -> float:
    m = re.fullmatch(r".*\.(\d+)f", field.spec)
    return 0.5 * 10 ** -int(m.group(1)) + 1e-9 if m else 0.0


@st.composite
def template_and_values(draw: st.DrawFn) -> tuple[Template, dict[str, Value]]:
    template = draw(st.sampled_from(TEMPLATES))
    return template, {f.name: draw(values_for(f)) for f in template.fields}


@FAST
@given(template_and_values())
def test_profile_templates_round_trip(case: tuple[Template, dict[str, Value]]) -> None:
    template, values = case
    line = template.format(values)
    parsed = template.parse(line)
    assert set(parsed) == set(values)
    for f in template.fields:
        if f.type == "float":
            assert math.isclose(float(parsed[f.name]), float(values[f.name]),
                                abs_tol=tolerance(f) * (1 + abs(float(values[f.name])) * 1e-12))
        else:
            assert parsed[f.name] == values[f.name]
            assert type(parsed[f.name]) is type(values[f.name])
    assert template.format(parsed) == line  # formatting what we parsed changes nothing
    assert template._parse_generic(line) == parsed  # fast path agrees with the reference parser
    assert CODEC.decode(CODEC.encode(line)) == line


@FAST
@given(st.integers(-999, 999), LINE_TEXT)
def test_error_reply_round_trip(code: int, text: str) -> None:
    line = CODEC.format_error(code, text)
    assert CODEC.parse_error(line) == (code, " ".join(text.split()) or "refused")


@FAST
@given(LINE_TEXT, st.floats(-1e9, 1e9, allow_nan=False), st.booleans())
def test_str_last_field_and_grouping_spec(text: str, amount: float, flag: bool) -> None:
    fields = {"a": FieldCodec("a", "float"), "b": FieldCodec("b", "bool"),
              "t": FieldCodec("t", "str")}
    template = Template("A={a:,.2f} B={b} T={t}", fields)
    parsed = template.parse(template.format({"a": amount, "b": flag, "t": text}))
    assert parsed["t"] == text and parsed["b"] is flag
    assert abs(float(parsed["a"]) - amount) <= 0.005 + abs(amount) * 1e-15


def test_status_line_parses_to_typed_values() -> None:
    line = ("STATE=EXECUTING ALARM=0 JOB=42 OUTCOME=RUNNING BOOT=7 DOOR=1 CW=0 EMO=1 RPM=30000 "
            "CUTS=3 FLOW=1.50")
    values = CODEC.queries["status"].reply.parse(line)
    assert values == {
        "state": "EXECUTING", "alarm_id": 0, "job_id": 42, "job_outcome": "RUNNING", "boot_id": 7,
        "door_closed": True, "cooling_water_ok": False, "emo_ok": True,
        "spindle_speed_rpm": 30000.0, "cuts_done": 3, "cooling_flow_lpm": 1.5,
    }


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("STATE=IDLE ALARM=x JOB=1 OUTCOME=NONE BOOT=7 DOOR=1 CW=1 EMO=1 RPM=0 CUTS=0 FLOW=0.00",
         "alarm_id"),
        ("STATE=IDLE ALARM=0 JOB=1 OUTCOME=NONE BOOT=7 DOOR=2 CW=1 EMO=1 RPM=0 CUTS=0 FLOW=0.00",
         "1 or 0"),
        ("STATE=BUSY ALARM=0 JOB=1 OUTCOME=NONE BOOT=7 DOOR=1 CW=1 EMO=1 RPM=0 CUTS=0 FLOW=0.00",
         "one of"),
        ("STATE=IDLE ALARM=0 JOB=1 OUTCOME=NONE BOOT=7 DOOR=1 CW=1 EMO=1 RPM=1_0 CUTS=0 FLOW=0.00",
         "spindle_speed_rpm"),
        ("CUTS=1 TIME=2.000 WEAR=0.100", "does not match"),
        ("", "does not match"),
    ],
)
def test_bad_lines_raise_value_error(line: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CODEC.queries["status"].reply.parse(line)


def test_framing_errors() -> None:
    with pytest.raises(ValueError, match="undecodable ascii"):
        CODEC.decode(b"\xff\x00#TATE=IDLE\r\n")
    with pytest.raises(ValueError, match="line break"):
        CODEC.encode("STATUS?\r\nRESET")
    with pytest.raises(ValueError, match="not ascii"):
        CODEC.encode("STATUS\u00b0")
    assert CODEC.decode(b"OK\r\n") == "OK"
    assert CODEC.parse_error("OK") is None
    assert CODEC.parse_error("ERR 4 interlock door_closed not made") == (
        4, "interlock door_closed not made")


def test_format_errors() -> None:
    start = CODEC.commands["start"].request
    with pytest.raises(ValueError, match="no value for field 'cut_count'"):
        start.format({"job_id": 1, "spindle_rpm": 30000, "feed_mm_s": 5, "cut_length_mm": 9})
    status = CODEC.queries["status"].reply
    good: dict[str, Value] = {f.name: 0 for f in status.fields}
    good |= {"state": "IDLE", "job_outcome": "NONE"}
    assert status.format(good).startswith("STATE=IDLE ALARM=0")
    assert status.format({**good, "state": 4}).startswith("STATE=EXECUTING")  # wire code -> name
    with pytest.raises(ValueError, match="not one of"):
        status.format({**good, "state": "BUSY"})
    with pytest.raises(ValueError, match="not an int"):
        status.format({**good, "alarm_id": 1.5})
    with pytest.raises(ValueError, match="not a bool"):
        status.format({**good, "door_closed": "yes"})
    with pytest.raises(ValueError, match="appears twice"):
        Template("{a} {a}", {})


def test_codec_is_cached_per_profile() -> None:
    assert codec_for(PROFILE) is CODEC
    assert codec_for(PROFILE.model_copy(update={"description": "other"})) is CODEC
    other = SerialProfile.model_validate(
        {**PROFILE.model_dump(), "terminator": "\n"}
    )
    assert codec_for(other) is not CODEC
    assert codec_for(other).terminator == b"\n"
