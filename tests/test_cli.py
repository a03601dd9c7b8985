"""The CLI as an operator uses it: `sim up` in one process, `tools status` and raw clients in others."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

WAFERLINE = [sys.executable, "-m", "waferline.cli"]
NINE = ["bonder1", "grinder1", "plater1", "sputter1", "etcher1", "cvd1", "saw1", "coater1", "mounter1"]


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*WAFERLINE, *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def sim_up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, subprocess.Popen[str]]]:
    tmp = tmp_path_factory.mktemp("simup")
    eps = tmp / "endpoints.json"
    proc = subprocess.Popen(
        [*WAFERLINE, "sim", "up", "--endpoints-file", str(eps), "--run-dir", str(tmp / "run")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 30
    while not eps.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            out, err = proc.communicate()
            pytest.fail(f"sim up did not come up:\n{out}\n{err}")
        time.sleep(0.05)
    yield eps, proc
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def endpoint(eps: Path, name: str) -> dict[str, Any]:
    doc = json.loads(eps.read_text())
    return next(t for t in doc["tools"] if t["name"] == name)


def mqtt_login(addr: dict[str, Any]) -> list[str]:
    """mosquitto_sub's options to log in as the controller the endpoints file names (the broker
    refuses anonymous clients and speaks TLS only)."""
    secret = Path(addr["password"]["file"]).read_text().strip()
    return ["-u", addr["username"], "-P", secret, "--cafile", addr["ca_file"]]


def test_endpoints_file_describes_every_tool(sim_up: tuple[Path, Any]) -> None:
    doc = json.loads(sim_up[0].read_text())
    by_name = {t["name"]: t for t in doc["tools"]}
    assert set(by_name) == set(NINE)
    assert {t["kind"] for t in doc["tools"]} == {
        "bonder", "sputterer", "plater", "etcher", "dicing_saw", "coater", "grinder", "cvd", "ball_mounter"}
    assert by_name["bonder1"]["address"]["host"] == "127.0.0.1"
    assert by_name["bonder1"]["address"]["port"] > 0
    assert by_name["sputter1"]["address"]["prefix"] == "waferline/emulated/sputter1"
    assert by_name["sputter1"]["address"]["host"] == "127.0.0.1"
    assert Path(by_name["saw1"]["address"]["url"]).exists()


def test_tools_status_json_reports_all_tools(sim_up: tuple[Path, Any]) -> None:
    res = run_cli("tools", "status", "--endpoints", str(sim_up[0]), "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["source"] == "endpoints file"
    states = {t["name"]: t["status"]["state"] for t in doc["tools"]}
    assert states == dict.fromkeys(NINE, "IDLE")
    saw = next(t for t in doc["tools"] if t["name"] == "saw1")
    assert saw["status"]["interlocks"] == {"door_closed": True, "cooling_water_ok": True,
                                           "emo_ok": True}


MBPOLL = pytest.mark.skipif(shutil.which("mbpoll") is None, reason="mbpoll not installed (CI installs it)")


def mbpoll_state(args: list[str]) -> str:
    """Input register 0 (`state`), 0-based, one poll; mbpoll prints `[0]: \t<value>`."""
    res = subprocess.run(["mbpoll", "-0", "-1", "-t", "3", "-r", "0", "-c", "1", *args],
                         capture_output=True, text=True, timeout=20)
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout.split("[0]:")[1].split()[0]


@MBPOLL
@pytest.mark.parametrize("name", ["bonder1", "grinder1"])
def test_mbpoll_reads_state_over_tcp(sim_up: tuple[Path, Any], name: str) -> None:
    addr = endpoint(sim_up[0], name)["address"]
    assert mbpoll_state(["-a", str(addr["unit"]), "-p", str(addr["port"]), "127.0.0.1"]) == "1"  # IDLE


@MBPOLL
def test_mbpoll_reads_state_over_rtu_pty(sim_up: tuple[Path, Any]) -> None:
    addr = endpoint(sim_up[0], "plater1")["address"]
    args = ["-m", "rtu", "-a", str(addr["unit"]), "-b", "115200", "-P", "none", addr["device"]]
    assert mbpoll_state(args) == "1"


@pytest.mark.skipif(shutil.which("mosquitto_sub") is None, reason="mosquitto-clients not installed")
@pytest.mark.parametrize("name", ["sputter1", "etcher1", "cvd1"])
def test_mosquitto_sub_gets_retained_status(sim_up: tuple[Path, Any], name: str) -> None:
    addr = endpoint(sim_up[0], name)["address"]
    res = subprocess.run(
        ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(addr["port"]), *mqtt_login(addr),
         "-t", f"{addr['prefix']}/status", "-C", "1", "-W", "10"],
        capture_output=True, text=True, timeout=20,
    )
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["state"] == "IDLE"


@pytest.mark.parametrize(("name", "expected"), [
    ("saw1", rb"STATE=IDLE ALARM=0 JOB=0 OUTCOME=NONE BOOT=\d+ DOOR=1 CW=1 EMO=1"),  # hand-written
    ("coater1", rb"STATE=IDLE ALARM_ID=0 JOB_ID=0 JOB_OUTCOME=NONE BOOT=\d+ DOOR_CLOSED=1"),  # generated
    ("mounter1", rb"STATE=IDLE ALARM_ID=0 JOB_ID=0 JOB_OUTCOME=NONE BOOT=\d+ DOOR_CLOSED=1"),
])
def test_raw_pty_status_line(sim_up: tuple[Path, Any], name: str, expected: bytes) -> None:
    url = endpoint(sim_up[0], name)["address"]["url"]
    fd = os.open(url, os.O_RDWR | os.O_NOCTTY)
    try:
        os.write(fd, b"STATUS?\r\n")
        buf = b""
        deadline = time.monotonic() + 5
        while not buf.endswith(b"\r\n") and time.monotonic() < deadline:
            buf += os.read(fd, 256)
    finally:
        os.close(fd)
    assert re.match(expected, buf), buf


def test_tools_run_against_running_line(sim_up: tuple[Path, Any]) -> None:
    res = run_cli("tools", "run", "bonder1", "--endpoints", str(sim_up[0]), "--json",
                  "--set", "temp_c=200", "--set", "force_kn=20", "--set", "hold_s=1800")
    assert res.returncode == 0, res.stderr
    result = json.loads(res.stdout)
    assert result["tool"] == "bonder1" and result["hold_time_s"] == 1800
    assert abs(result["peak_temp_c"] - 200) < 10
    after = json.loads(run_cli("tools", "status", "--endpoints", str(sim_up[0]), "--json").stdout)
    bonder = next(t for t in after["tools"] if t["name"] == "bonder1")["status"]
    assert (bonder["job_id"], bonder["job_outcome"]) == (result["job_id"], "COMPLETED")


def _status_of(eps: Path, name: str) -> dict[str, Any]:
    doc = json.loads(run_cli("tools", "status", "--endpoints", str(eps), "--json").stdout)
    entry: dict[str, Any] = next(t for t in doc["tools"] if t["name"] == name)
    return entry


def test_runtime_fault_switching(sim_up: tuple[Path, Any]) -> None:
    eps = str(sim_up[0])
    assert run_cli("sim", "fault", "saw1", "silence", "--endpoints", eps).returncode == 0
    listed = run_cli("sim", "faults", "--endpoints", eps)
    assert json.loads(listed.stdout)["faults"]["saw1"] == ["silence"]
    silent = _status_of(sim_up[0], "saw1")
    assert silent["ok"] is False and "ToolTimeout" in silent["error"]
    assert run_cli("sim", "clear", "saw1", "--endpoints", eps).returncode == 0
    assert _status_of(sim_up[0], "saw1")["status"]["state"] == "IDLE"


def test_runtime_interlock_and_alarm(sim_up: tuple[Path, Any]) -> None:
    eps = str(sim_up[0])
    assert run_cli("sim", "interlock", "bonder1", "door_closed", "open", "--endpoints", eps).returncode == 0
    assert _status_of(sim_up[0], "bonder1")["status"]["interlocks"]["door_closed"] is False
    refused = run_cli("tools", "run", "bonder1", "--endpoints", eps, "--set", "temp_c=200",
                      "--set", "force_kn=20", "--set", "hold_s=600")
    assert refused.returncode == 1 and "CommandRejected" in refused.stderr
    said = " ".join(refused.stderr.split())  # the tool's refusal in words: which tool, and why
    assert "bonder1 refused start: door_closed is not made" in said, said
    assert run_cli("sim", "interlock", "bonder1", "door_closed", "made", "--endpoints", eps).returncode == 0
    assert run_cli("sim", "alarm", "sputter1", "202", "--endpoints", eps).returncode == 0
    assert _status_of(sim_up[0], "sputter1")["status"]["alarm"]["id"] == 202
    bad = run_cli("sim", "interlock", "sputter1", "vacuum_ok", "open", "--endpoints", eps)
    assert bad.returncode == 1 and "no interlock input 'vacuum_ok'" in bad.stderr


@pytest.mark.skipif(shutil.which("mosquitto_sub") is None, reason="mosquitto-clients not installed")
def test_alarm_set_and_clear_reports_on_events_topic(sim_up: tuple[Path, Any]) -> None:
    eps = str(sim_up[0])
    addr = endpoint(sim_up[0], "etcher1")["address"]
    sub = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(addr["port"]), "-q", "1",
                            *mqtt_login(addr),
                            "-t", f"{addr['prefix']}/events", "-C", "2", "-W", "15"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)  # let the subscription land before the alarm
    assert run_cli("sim", "alarm", "etcher1", "900", "--endpoints", eps).returncode == 0
    assert run_cli("tools", "reset", "etcher1", "--endpoints", eps).returncode == 0
    out, err = sub.communicate(timeout=20)
    reports = [json.loads(line) for line in out.splitlines()]
    assert [(r["alarm_id"], r["state"]) for r in reports] == [(900, "SET"), (900, "CLEAR")], err
    assert reports[0]["text"] == "process alarm"
    assert _status_of(sim_up[0], "etcher1")["status"]["alarm"] is None


def test_sigterm_stops_cleanly(sim_up: tuple[Path, subprocess.Popen[str]]) -> None:
    eps, proc = sim_up
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "line stopped" in out
    assert not eps.exists()


def test_tools_status_embedded_when_nothing_runs(tmp_path: Path) -> None:
    res = subprocess.run([*WAFERLINE, "tools", "status", "--json"], capture_output=True,
                         text=True, timeout=60, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["source"] == "embedded emulators"
    assert [t["status"]["state"] for t in doc["tools"]] == ["IDLE"] * len(NINE)


def test_tools_run_out_of_range_recipe_exits_2(tmp_path: Path) -> None:
    res = subprocess.run([*WAFERLINE, "tools", "run", "saw1", "--set", "spindle_rpm=90000",
                          "--set", "feed_mm_s=20", "--set", "cut_count=4", "--set", "cut_length_mm=50"],
                         capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert res.returncode == 2
    assert "spindle_rpm" in res.stderr and "60000" in res.stderr


def test_unreachable_tool_exits_1(tmp_path: Path) -> None:
    from tests.fixtures.common import free_port

    line = tmp_path / "real.yaml"
    line.write_text(
        "name: bench\ntools:\n  - name: bonder9\n    kind: bonder\n    profile: bonder-modbus\n"
        "    emulated: false\n    timeouts: {connect_s: 0.5, request_s: 0.5}\n"
        f"    address: {{transport: modbus_tcp, host: 127.0.0.1, port: {free_port()}}}\n"
    )
    res = run_cli("tools", "status", "--line", str(line), "--json")
    assert res.returncode == 1
    tool = json.loads(res.stdout)["tools"][0]
    assert tool["ok"] is False and "ToolConnectionError" in tool["error"]


def test_invalid_line_exits_2_with_field(tmp_path: Path) -> None:
    line = tmp_path / "bad.yaml"
    line.write_text("name: bad\ntime_scale: -1\ntools: []\n")
    res = run_cli("tools", "status", "--line", str(line))
    assert res.returncode == 2
    assert "time_scale" in res.stderr and "tools" in res.stderr


def test_log_json_option(tmp_path: Path) -> None:
    res = subprocess.run([*WAFERLINE, "--log-level", "INFO", "--log-json", "tools", "status"],
                         capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    docs = [json.loads(line) for line in res.stderr.splitlines() if line.startswith("{")]
    assert any(d.get("tool") == "bonder1" and d.get("transport") == "modbus" for d in docs)
