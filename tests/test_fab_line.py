"""The all-HSMS fab line through the CLI, as an operator uses it (issue 13): `waferline tools status`
and `tools run` on GEM tools, every shipped flow run to completion with its claims ok, and a mixed
bench line (GEM tools beside Modbus, serial and MQTT ones) running Flow A."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from drivers.line import LINE_DIR
from sequencer.run.journal import read_events
from sim_tools.control import send
from tests.fixtures.sequencer import WAFERLINE, sim_up
from tests.test_any_kind_any_transport import RECIPES

FLOWS = ["flow-a", "flow-b", "flow-c", "flow-d", "flow-e"]


@pytest.fixture(scope="module")
def fab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, dict[str, str]]]:
    with sim_up("fab", 20000, tmp_path_factory.mktemp("fab")) as running:
        yield running


def cli(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*WAFERLINE, *args], capture_output=True, text=True, timeout=timeout, env=env)


def test_tools_status_and_run_on_gem_tools(fab: tuple[Path, Path, dict[str, str]]) -> None:
    line, eps, env = fab
    mismatched = cli(env, "tools", "status", "--endpoints", str(eps), "--json")  # the default line's profiles
    assert mismatched.returncode == 2 and "give the line the emulators were started with" in mismatched.stderr
    where = ("--line", str(line), "--endpoints", str(eps))
    res = cli(env, "tools", "status", *where, "--json")
    assert res.returncode == 0, res.stderr
    tools = json.loads(res.stdout)["tools"]
    assert len(tools) == 9 and {t["transport"] for t in tools} == {"hsms"}
    assert all(t["status"]["state"] == "IDLE" and t["status"]["alarm"] is None for t in tools)
    for name, kind in (("bonder1", "bonder"), ("coater1", "coater")):  # coater1: as a process program
        run = cli(env, "tools", "run", name, *where, "--recipe", str(RECIPES / f"{kind}.yaml"), "--json")
        assert run.returncode == 0, run.stderr
        result = json.loads(run.stdout)
        after = json.loads(cli(env, "tools", "status", *where, "--json").stdout)
        status = next(t for t in after["tools"] if t["name"] == name)["status"]
        assert (status["job_id"], status["job_outcome"]) == (result["job_id"], "COMPLETED")


@pytest.mark.parametrize("flow", FLOWS)
def test_every_flow_completes_on_the_fab_line(fab: tuple[Path, Path, dict[str, str]], flow: str) -> None:
    line, eps, env = fab
    res = cli(env, "run", flow, "--line", str(line), "--endpoints", str(eps), timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    runs = Path(env["WAFERLINE_RUNS_DIR"])
    run_dir = max(runs.iterdir(), key=lambda p: p.stat().st_mtime)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["state"] == "COMPLETE" and summary["claims_ok"], summary
    started = [e for e in read_events(run_dir / "journal.sqlite") if e.kind == "step_started"]
    assert started and all(e.data["tool"] in {"bonder1", "grinder1", "plater1", "sputter1", "etcher1", "cvd1",
                                             "saw1", "coater1", "mounter1"} for e in started)


def test_mixed_bench_line_runs_flow_a(tmp_path: Path) -> None:
    """The default line with three tools turned into GEM tools: a hardware-in-loop bench's mix."""
    data = yaml.safe_load((LINE_DIR / "emulated.yaml").read_text())
    for tool in data["tools"]:
        if tool["name"] in ("bonder1", "etcher1", "coater1"):
            tool["profile"] = f"{tool['kind']}-hsms"
            tool["address"] = {"transport": "hsms", "host": "127.0.0.1", "port": 0}
    line = tmp_path / "mixed.yaml"
    line.write_text(yaml.safe_dump(data))
    env = {**os.environ, "WAFERLINE_RUNS_DIR": str(tmp_path / "runs")}
    res = cli(env, "run", "flow-a", "--line", str(line), timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    transports = {t["address"]["transport"] for t in data["tools"]}
    assert transports == {"hsms", "modbus_tcp", "modbus_rtu", "mqtt", "serial"}
    summary = json.loads(next((tmp_path / "runs").glob("*/summary.json")).read_text())
    assert summary["state"] == "COMPLETE" and summary["claims_ok"]


def test_a_gem_tool_silent_at_start_holds_the_run_naming_it(tmp_path: Path) -> None:
    """The bonder does not answer S1F13 (T3): the run starts, holds on the bonder's first step with the
    reason, and nothing is sent to the bonder (with other transports a silent tool holds the same way)."""
    with sim_up("fab", 20000, tmp_path) as (line, eps, env):
        assert cli(env, "sim", "fault", "bonder1", "silence", "--endpoints", str(eps)).returncode == 0
        res = cli(env, "run", "flow-a", "--line", str(line), "--endpoints", str(eps), "--on-hold", "fail",
                  timeout=300)
        assert res.returncode == 3, res.stdout[-2000:] + res.stderr[-2000:]  # HELD
        run_dir = next(Path(env["WAFERLINE_RUNS_DIR"]).iterdir())
        events = read_events(run_dir / "journal.sqlite")
        held = [e for e in events if e.kind == "state" and e.data["to"] == "HELD"]
        assert held and "bonder1" in json.dumps([e.data for e in events if e.kind in ("hold", "state")])
        jobs = asyncio.run(send(Path(json.loads(eps.read_text())["control"]), {"op": "jobs"}))
        assert jobs["ledger"].get("bonder1", []) == []
