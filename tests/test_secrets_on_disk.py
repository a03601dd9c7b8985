"""Secrets on disk (issue 11.2): passwords are referenced, never written; files that name them are
0600; run directories and journals are readable by their owner and group only."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import yaml

from drivers.addresses import MqttAddress
from drivers.errors import ConfigError, ToolConnectionError
from drivers.factory import make_tool
from drivers.line import LINE_DIR, Endpoint, Endpoints, LineConfig
from drivers.secrets import SecretRef
from drivers.validation import validate_model
from sequencer.run.journal import Journal
from sequencer.run.rundir import JOURNAL, create_run_dir
from sim_tools.line import EmulatedLine


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_password_in_clear_is_refused_naming_the_field() -> None:
    data = yaml.safe_load((LINE_DIR / "emulated.yaml").read_text())
    data["broker"] = {"embedded": False, "host": "127.0.0.1", "port": 1883, "username": "ctl",
                      "password": "s3cret"}
    with pytest.raises(ConfigError, match=r"broker.password.*never written in a config") as err:
        validate_model(LineConfig, data, "line.yaml")
    assert "s3cret" not in str(err.value).split("got")[0]


def test_secret_from_env_or_a_private_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WAFERLINE_TEST_SECRET", "from-env")
    assert SecretRef(env="WAFERLINE_TEST_SECRET").resolve("broker") == "from-env"
    with pytest.raises(ConfigError, match="WAFERLINE_TEST_UNSET is not set"):
        SecretRef(env="WAFERLINE_TEST_UNSET").resolve("broker")
    secret = tmp_path / "mqtt.secret"
    secret.write_text("from-file\n")
    secret.chmod(0o644)
    with pytest.raises(ConfigError, match=r"readable by others \(mode 0644\); chmod 600"):
        SecretRef(file=secret).resolve("broker")
    secret.chmod(0o600)
    assert SecretRef(file=secret).resolve("broker") == "from-file"


def test_endpoints_file_is_private_and_holds_no_password(tmp_path: Path) -> None:
    eps = tmp_path / "endpoints.json"
    secret = SecretRef(env="WAFERLINE_BROKER_PASSWORD")
    Endpoints(line="l", time_scale=1.0, broker={"host": "127.0.0.1", "port": 1883, "password": secret},
              tools=[Endpoint(name="sputter1", kind="sputterer", transport="mqtt", profile="sputterer-mqtt",
                              address=MqttAddress(prefix="p/sputter1", username="ctl", password=secret))]
              ).write(eps)
    assert mode(eps) == 0o600
    read = Endpoints.read(eps)
    assert read.broker is not None and read.broker["password"] == {"env": "WAFERLINE_BROKER_PASSWORD"}
    address = read.tools[0].address
    assert isinstance(address, MqttAddress) and address.password == secret


async def test_embedded_broker_enforces_the_configured_password(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The embedded broker honours broker.username/password (it used to start anonymous); generated
    tool passwords and the hashes lie in a 0700 directory, each file 0600, no password in clear."""
    monkeypatch.setenv("WAFERLINE_TEST_BROKER_PW", "configured-pw")
    data = yaml.safe_load((LINE_DIR / "emulated.yaml").read_text())
    data["broker"].update(username="ctl", password={"env": "WAFERLINE_TEST_BROKER_PW"})
    data["tools"] = [t for t in data["tools"] if t["address"]["transport"] == "mqtt"][:1]
    line = validate_model(LineConfig, data, "line.yaml")
    async with EmulatedLine(line, run_dir=tmp_path / "sim") as emulated:
        assert emulated.endpoints is not None
        address = emulated.endpoints.tools[0].address
        assert isinstance(address, MqttAddress) and address.username == "ctl" and address.tls
        assert address.password == SecretRef(env="WAFERLINE_TEST_BROKER_PW")
        tool = make_tool(line.tools[0].model_copy(update={"address": address}), line)
        async with tool:
            await tool.status()
        monkeypatch.setenv("WAFERLINE_TEST_BROKER_PW", "wrong")
        with pytest.raises(ToolConnectionError):
            await make_tool(line.tools[0].model_copy(update={"address": address}), line).connect()
        secrets_dir = tmp_path / "sim" / "secrets"
        assert mode(secrets_dir) == 0o700
        files = list(secrets_dir.iterdir())
        assert files and all(mode(f) == 0o600 for f in files)
        assert "configured-pw" not in (secrets_dir / "amqtt.passwd").read_text()


def test_run_directory_and_journal_are_owner_and_group_only(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WAFERLINE_RUNS_DIR", str(tmp_path / "runs"))
    old = os.umask(0o022)  # a usual, permissive umask
    try:
        directory = create_run_dir()
        with Journal(directory / JOURNAL, directory.name) as j:
            j.append("note", text="x")
    finally:
        os.umask(old)
    assert mode(tmp_path / "runs") == 0o750 and mode(directory) == 0o750
    assert mode(directory / JOURNAL) == 0o640
    assert all(mode(p) & 0o007 == 0 for p in directory.iterdir() if p.name.startswith(JOURNAL))
