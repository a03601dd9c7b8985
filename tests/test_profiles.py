"""Profiles are validated with messages naming the file, the field and what is allowed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from drivers.errors import ProfileError
from drivers.kinds import KINDS
from drivers.profiles import PROFILE_DIR, load_profile


def write(tmp_path: Path, data: dict[str, Any], name: str = "p.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def shipped(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((PROFILE_DIR / f"{name}.yaml").read_text())
    return data


@pytest.mark.parametrize("path", sorted(PROFILE_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_profiles_cover_their_kind(path: Path) -> None:
    profile = load_profile(path)
    kind = KINDS[profile.kind]
    assert kind.required_variables() <= profile.variable_names()
    assert kind.required_commands() <= profile.command_names()
    assert profile.name == path.stem


def test_unknown_transport_names_allowed_values(tmp_path: Path) -> None:
    data = shipped("bonder-modbus") | {"transport": "profibus"}
    with pytest.raises(ProfileError) as exc:
        load_profile(write(tmp_path, data))
    msg = str(exc.value)
    assert "p.yaml" in msg and "transport" in msg and "modbus, serial, mqtt" in msg


def test_modbus_type_must_fit_table(tmp_path: Path) -> None:
    data = shipped("bonder-modbus")
    data["variables"]["door_closed"] = {"table": "input", "address": 30, "type": "bool"}
    with pytest.raises(ProfileError) as exc:
        load_profile(write(tmp_path, data))
    msg = str(exc.value)
    assert "variables.door_closed" in msg and "coil/discrete are 'bool'" in msg


def test_modbus_address_out_of_range_names_bounds(tmp_path: Path) -> None:
    data = shipped("bonder-modbus")
    data["variables"]["alarm_id"]["address"] = 70000
    with pytest.raises(ProfileError) as exc:
        load_profile(write(tmp_path, data))
    assert "variables.alarm_id.address" in str(exc.value)
    assert "65535" in str(exc.value)


def test_modbus_overlapping_registers_rejected(tmp_path: Path) -> None:
    data = shipped("bonder-modbus")
    data["variables"]["hold_s"]["address"] = 11  # uint32 at 11-12 overlaps force_kn at 11
    with pytest.raises(ProfileError, match="already used by 'force_kn'"):
        load_profile(write(tmp_path, data))


def test_contract_enum_codes_are_fixed(tmp_path: Path) -> None:
    data = shipped("bonder-modbus")
    data["enums"]["state"]["IDLE"] = 7
    with pytest.raises(ProfileError, match=r"enums.state.IDLE must be 1"):
        load_profile(write(tmp_path, data))


def test_unknown_enum_table_lists_known(tmp_path: Path) -> None:
    data = shipped("dicing_saw-serial")
    data["variables"]["state"]["enum"] = "mood"
    with pytest.raises(ProfileError) as exc:
        load_profile(write(tmp_path, data))
    assert "variables.state.enum" in str(exc.value) and "'outcome'" in str(exc.value)


def test_serial_reply_fields_must_be_variables(tmp_path: Path) -> None:
    data = shipped("dicing_saw-serial")
    data["queries"]["status"]["reply"] += " TEMP={blade_temp_c}"
    with pytest.raises(ProfileError, match=r"queries.status.reply: field 'blade_temp_c'"):
        load_profile(write(tmp_path, data))


def test_command_args_must_be_variables(tmp_path: Path) -> None:
    data = shipped("sputterer-mqtt")
    data["commands"]["start"]["args"].append("argon_sccm")
    with pytest.raises(ProfileError, match=r"commands.start: argument 'argon_sccm'"):
        load_profile(write(tmp_path, data))


def test_mqtt_read_is_built_in(tmp_path: Path) -> None:
    data = shipped("sputterer-mqtt")
    data["commands"]["read"] = {}
    with pytest.raises(ProfileError, match="built in"):
        load_profile(write(tmp_path, data))


def test_missing_profile_lists_shipped(tmp_path: Path) -> None:
    with pytest.raises(ProfileError) as exc:
        load_profile("toaster-modbus")
    assert "bonder-modbus" in str(exc.value)


def test_not_yaml_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("kind: [unclosed\n")
    with pytest.raises(ProfileError, match="not valid YAML"):
        load_profile(path)
