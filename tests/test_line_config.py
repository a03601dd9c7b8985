"""Line configs: validated with messages naming the tool and field; profiles must fit tool kinds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from drivers.errors import ConfigError
from drivers.kinds import KINDS
from drivers.line import LINE_DIR, Endpoints, apply_endpoints, load_line


def base() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((LINE_DIR / "emulated.yaml").read_text())
    return data


def load(tmp_path: Path, data: dict[str, Any]) -> Any:
    path = tmp_path / "line.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_line(path)


def test_default_line_loads() -> None:
    line = load_line("emulated")
    assert {t.kind for t in line.tools} == set(KINDS)  # all nine kinds
    assert {t.address.transport for t in line.tools} == {"modbus_tcp", "modbus_rtu", "mqtt", "serial"}
    assert line.broker is not None and line.broker.host == "127.0.0.1"


def test_time_scale_must_be_positive(tmp_path: Path) -> None:
    data = base() | {"time_scale": 0}
    with pytest.raises(ConfigError) as exc:
        load(tmp_path, data)
    assert "time_scale" in str(exc.value) and "greater than 0" in str(exc.value)


def test_unknown_kind_lists_kinds(tmp_path: Path) -> None:
    data = base()
    data["tools"][0]["kind"] = "toaster"
    with pytest.raises(ConfigError) as exc:
        load(tmp_path, data)
    assert "tools.0(bonder1).kind" in str(exc.value) and "'dicing_saw'" in str(exc.value)


def test_duplicate_tool_names(tmp_path: Path) -> None:
    data = base()
    data["tools"][1]["name"] = "bonder1"
    with pytest.raises(ConfigError, match="duplicate tool name"):
        load(tmp_path, data)


def test_mqtt_tool_needs_broker(tmp_path: Path) -> None:
    data = base()
    del data["broker"]
    with pytest.raises(ConfigError, match="need a `broker:` section"):
        load(tmp_path, data)


def test_profile_transport_must_match_address(tmp_path: Path) -> None:
    data = base()
    data["tools"][0]["address"] = {"transport": "serial", "url": "pty"}
    with pytest.raises(ConfigError) as exc:
        load(tmp_path, data)
    assert "bonder1" in str(exc.value) and "needs a serial profile" in str(exc.value)


def test_profile_kind_must_match_tool(tmp_path: Path) -> None:
    data = base()
    data["tools"][0]["profile"] = "sputterer-mqtt"
    data["tools"][0]["address"] = {"transport": "mqtt", "prefix": "x"}
    with pytest.raises(ConfigError, match="is for kind 'sputterer', tool is 'bonder'"):
        load(tmp_path, data)


def test_profile_missing_kind_variables(tmp_path: Path) -> None:
    prof: dict[str, Any] = yaml.safe_load(
        (LINE_DIR.parent / "profiles" / "bonder-modbus.yaml").read_text()
    )
    del prof["variables"]["peak_temp_c"]
    (tmp_path / "thin.yaml").write_text(yaml.safe_dump(prof))
    data = base()
    data["tools"][0]["profile"] = "thin.yaml"
    with pytest.raises(ConfigError, match=r"lacks variables \['peak_temp_c'\]"):
        load(tmp_path, data)


def test_bad_port_names_range(tmp_path: Path) -> None:
    data = base()
    data["tools"][0]["address"]["port"] = 99999
    with pytest.raises(ConfigError) as exc:
        load(tmp_path, data)
    assert "address.modbus_tcp.port" in str(exc.value) and "65535" in str(exc.value)


def test_endpoints_round_trip_and_apply(tmp_path: Path) -> None:
    line = load_line("emulated")
    eps = Endpoints.model_validate({
        "line": "emulated", "time_scale": 5.0, "tools": [{
            "name": "bonder1", "kind": "bonder", "transport": "modbus_tcp",
            "profile": "bonder-modbus",
            "address": {"transport": "modbus_tcp", "host": "127.0.0.1", "port": 15020, "unit": 1},
        }],
    })
    path = tmp_path / "eps.json"
    eps.write(path)
    live = apply_endpoints(line, Endpoints.read(path))
    assert live.tool("bonder1").address.port == 15020  # type: ignore[union-attr]
    assert live.time_scale == 5.0
    assert live.tool("saw1").address == line.tool("saw1").address


def test_endpoints_garbage_is_config_error(tmp_path: Path) -> None:
    path = tmp_path / "eps.json"
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="cannot read endpoints file"):
        Endpoints.read(path)
