"""The package as a user meets it (issue 12.4-12.5): version and `python -m waferline`, configs found
in the documented order, list verbs, clear errors for unknown names, `sim up` never clobbering a live
line's endpoints file, and one time scale for drivers and emulators. (The wheel itself is built,
installed in a fresh venv and run from an empty directory by .ci/run.)"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from drivers.configs import SHIPPED
from tests.fixtures.sequencer import WAFERLINE
from waferline.cli import app

runner = CliRunner()


def said(*argv: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    done = runner.invoke(app, list(argv), env={"COLUMNS": "200", **(env or {})})
    return done.exit_code, " ".join(done.output.split())


def test_version_and_python_m() -> None:
    code, text = said("--version")
    assert code == 0 and text.startswith("waferline ")
    res = subprocess.run([*WAFERLINE[:1], "-m", "waferline", "--version"], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0 and res.stdout.split()[0] == "waferline", res.stderr


def test_list_verbs_show_what_can_run_and_what_ran(tmp_path: Path) -> None:
    code, text = said("flows")
    assert code == 0 and all(f"flow-{x}" in text for x in "abcde")
    code, text = said("lines")
    assert code == 0 and "emulated" in text and "pools" in text
    (tmp_path / "20261204-101010-abcd").mkdir()
    code, text = said("runs", env={"WAFERLINE_RUNS_DIR": str(tmp_path)})
    assert code == 0 and "20261204-101010-abcd" in text and "no summary" in text


def test_unknown_names_list_the_ones_that_exist() -> None:
    code, text = said("check", "flow-zz")
    assert code == 2 and "no flow named 'flow-zz'; there are: flow-a, flow-b, flow-c, flow-d, flow-e" in text
    code, text = said("tools", "status", "--line", "nowhere")
    assert code == 2 and "no line named 'nowhere'; there are:" in text and "emulated" in text


def test_config_dir_comes_before_the_current_directory_and_the_shipped_configs(tmp_path: Path,
                                                                               monkeypatch: pytest.MonkeyPatch
                                                                               ) -> None:
    flow = yaml.safe_load((SHIPPED / "flows" / "flow-a.yaml").read_text())
    mine, cwd = tmp_path / "mine", tmp_path / "cwd"
    for root, title in ((mine, "from --config-dir"), (cwd / "configs", "from the current directory")):
        (root / "flows").mkdir(parents=True)
        doc = {**flow, "name": "flow-x", "title": title}
        (root / "flows" / "flow-x.yaml").write_text(yaml.safe_dump(doc))
    monkeypatch.chdir(cwd)
    assert "from the current directory" in said("flows")[1]
    assert "from --config-dir" in said("--config-dir", str(mine), "flows")[1]
    assert "from --config-dir" in said("flows", env={"WAFERLINE_CONFIG_DIR": str(mine)})[1]
    assert said("--config-dir", str(mine), "check", "flow-x")[0] == 0
    code, text = said("--config-dir", str(tmp_path / "absent"), "flows")
    assert code == 2 and "absent" in text and "such directory" in text


@pytest.fixture
def live_line(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[str]]]:
    eps = tmp_path / "eps.json"
    proc = subprocess.Popen([*WAFERLINE, "sim", "up", "--endpoints-file", str(eps), "--run-dir",
                             str(tmp_path / "sim")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 60
    while not eps.exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.stderr else ""
        time.sleep(0.1)
    yield eps, proc
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)


def test_sim_up_never_clobbers_a_live_lines_endpoints(live_line: tuple[Path, subprocess.Popen[str]],
                                                      tmp_path: Path) -> None:
    eps, _ = live_line
    before = eps.read_text()
    second = subprocess.run([*WAFERLINE, "sim", "up", "--endpoints-file", str(eps), "--run-dir",
                             str(tmp_path / "sim2")], capture_output=True, text=True, timeout=60)
    assert second.returncode == 2 and "still running" in " ".join(second.stderr.split()), second.stderr
    assert eps.read_text() == before


def test_sim_up_leaves_a_file_it_did_not_write(live_line: tuple[Path, subprocess.Popen[str]]) -> None:
    eps, proc = live_line
    replaced = eps.read_text().replace(f'"pid": {proc.pid}', f'"pid": {os.getpid()}')
    eps.write_text(replaced)  # someone else's now
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=30)
    assert eps.exists() and eps.read_text() == replaced


def test_time_scale_must_match_the_running_emulators(live_line: tuple[Path, subprocess.Popen[str]]) -> None:
    eps, _ = live_line
    res = subprocess.run([*WAFERLINE, "run", "--endpoints", str(eps), "--time-scale", "5"],
                         capture_output=True, text=True, timeout=60)
    text = " ".join(res.stderr.split())
    assert res.returncode == 2 and "--time-scale 5 differs from the running emulators' 20000" in text, text
