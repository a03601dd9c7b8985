"""Bad input (issue 11.5): every verb answers a broken file with exit 2 and a message naming the file
and the problem, never a traceback, and never accepts a duplicate key, a NaN or infinity, an unknown
emulator parameter, a non-loopback or clashing emulator address, a profile that cannot hold its
recipe's range, or a flow step whose stack change no tool (or the wrong tool) would make."""

from __future__ import annotations

import copy
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from drivers.line import LINE_DIR
from drivers.profiles.loader import PROFILE_DIR
from sequencer.process.flow import FLOW_DIR
from waferline.cli import app

runner = CliRunner()
RECIPE = Path(__file__).resolve().parents[1] / "configs" / "recipes" / "bonder.yaml"


def invoke(*argv: str) -> tuple[int, str]:
    done = runner.invoke(app, list(argv))
    text = " ".join(done.output.split())
    assert done.exception is None or isinstance(done.exception, SystemExit), f"{argv}: {done.exception!r}"
    assert "Traceback" not in text, text
    return done.exit_code, text


VERBS: dict[str, Callable[[Path], list[str]]] = {
    "sim up --line": lambda f: ["sim", "up", "--line", str(f), "--endpoints-file", str(f.parent / "e.json")],
    "run --line": lambda f: ["run", "--line", str(f)],
    "profiles check": lambda f: ["profiles", "check", str(f)],
    "check": lambda f: ["check", str(f)],
    "tools run --recipe": lambda f: ["tools", "run", "bonder1", "--recipe", str(f)],
}
UNREADABLE: dict[str, Callable[[Path], str]] = {
    "not UTF-8": lambda f: f.write_bytes(b"\xff\xfe\x00 name: x") and "not UTF-8",
    "binary garbage": lambda f: f.write_bytes(bytes(range(256)) * 3) and "not UTF-8",
    "nested 20000 deep": lambda f: f.write_text("[" * 20000 + "]" * 20000) and "nested too deep",
    "empty": lambda f: f.write_text("") == 0 and "empty",
    "missing": lambda f: "No such file",
    "a directory": lambda f: f.mkdir() or "Is a directory",
}


@pytest.mark.parametrize("what", UNREADABLE)
@pytest.mark.parametrize("verb", VERBS)
def test_unreadable_input_is_exit_2_naming_the_file(tmp_path: Path, verb: str, what: str) -> None:
    bad = tmp_path / "input.yaml"
    expected = UNREADABLE[what](bad)
    code, said = invoke(*VERBS[verb](bad))
    assert code == 2, said
    assert str(bad) in said and (expected in said or (verb == "profiles check" and what == "missing")), said


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def shipped(directory: Path, name: str) -> str:
    return (directory / f"{name}.yaml").read_text()


@pytest.mark.parametrize(("verb", "text"), [
    ("sim up --line", shipped(LINE_DIR, "emulated").replace("seed: 1\n", "seed: 1\nseed: 2\n")),
    ("profiles check", shipped(PROFILE_DIR, "bonder-modbus").replace("kind: bonder\n",
                                                                    "kind: bonder\nkind: bonder\n")),
    ("check", shipped(FLOW_DIR, "flow-a").replace("\nsource:", "\ntitle: again\nsource:")),
    ("tools run --recipe", RECIPE.read_text() + "force_kn: 5\n"),
])
def test_a_duplicate_key_is_an_error_naming_file_line_and_key(tmp_path: Path, verb: str, text: str) -> None:
    assert text.count("\n") > 2
    bad = write(tmp_path / "dup.yaml", text)
    code, said = invoke(*VERBS[verb](bad))
    assert code == 2 and str(bad) in said and "duplicate key" in said and "line" in said, said


def edited(directory: Path, name: str, change: Callable[[dict[str, Any]], None]) -> str:
    data = yaml.safe_load((directory / f"{name}.yaml").read_text())
    change(data)
    return yaml.safe_dump(data, sort_keys=False)


def _hole_depth_nan(d: dict[str, Any]) -> None:
    steps = [s for item in d["steps"] for s in item.get("steps", [item])]
    holes = next(s for s in steps if "through_holes" in s.get("effect", {}))
    holes["effect"]["through_holes"]["nominal"] = float("nan")  # a NaN hole depth passed the rules


def _scale_inf(d: dict[str, Any]) -> None:
    next(iter(v for v in d["variables"].values() if "scale" in v))["scale"] = float("inf")


def _params(value: Any) -> Callable[[dict[str, Any]], None]:
    def change(d: dict[str, Any]) -> None:
        d["tools"][0]["emulator"] = {"params": {"pumpdown_s": value}}
    return change


@pytest.mark.parametrize(("verb", "directory", "name", "change", "said_part"), [
    ("check", FLOW_DIR, "flow-a", _hole_depth_nan, "not a finite number"),
    ("profiles check", PROFILE_DIR, "bonder-modbus", _scale_inf, "not a finite number"),
    ("sim up --line", LINE_DIR, "emulated", _params(float("nan")), "not a finite number"),
    ("sim up --line", LINE_DIR, "emulated", _params("nan"), "finite number"),
    ("sim up --line", LINE_DIR, "emulated", _params(-5.0), "not a finite number >= 0"),
])
def test_nan_and_infinity_are_refused_everywhere(tmp_path: Path, verb: str, directory: Path, name: str,
                                                 change: Callable[[dict[str, Any]], None],
                                                 said_part: str) -> None:
    bad = write(tmp_path / "bad.yaml", edited(directory, name, change))
    code, said = invoke(*VERBS[verb](bad))
    assert code == 2 and said_part in said, said


@pytest.mark.parametrize("value", ["nan", ".nan", "inf", "-.inf", "1e999"])
def test_a_recipe_setpoint_must_be_finite(value: str) -> None:
    code, said = invoke("tools", "run", "bonder1", "--recipe", str(RECIPE), "--set", f"force_kn={value}")
    assert code == 2 and "force_kn" in said and "finite" in said, said


def test_unknown_emulator_param_is_refused(tmp_path: Path) -> None:
    def typo(d: dict[str, Any]) -> None:
        d["tools"][0]["emulator"] = {"params": {"pumpdwn_s": 60}}
    bad = write(tmp_path / "line.yaml", edited(LINE_DIR, "emulated", typo))
    code, said = invoke(*VERBS["sim up --line"](bad))
    assert code == 2 and "pumpdwn_s" in said and "unknown to the bonder emulator" in said, said


def _tool(index: int, **address: Any) -> Callable[[dict[str, Any]], None]:
    def change(d: dict[str, Any]) -> None:
        d["tools"][index]["address"].update(address)
    return change


def _two_on(port: int) -> Callable[[dict[str, Any]], None]:
    def change(d: dict[str, Any]) -> None:
        tcp = [t for t in d["tools"] if t["address"]["transport"] == "modbus_tcp"]
        for t in tcp[:2]:
            t["address"]["port"] = port
    return change


def _broker_host(host: str) -> Callable[[dict[str, Any]], None]:
    def change(d: dict[str, Any]) -> None:
        d["broker"]["host"] = host
    return change


def _mqtt_prefix(prefix: str) -> Callable[[dict[str, Any]], None]:
    def change(d: dict[str, Any]) -> None:
        next(t for t in d["tools"] if t["address"]["transport"] == "mqtt")["address"]["prefix"] = prefix
    return change


@pytest.mark.parametrize(("change", "said_part"), [
    (_tool(0, host="10.1.2.3"), "tools.0(bonder1).address: '10.1.2.3' resolves to 10.1.2.3, not loopback"),
    (_tool(0, host="0"), "wildcard address"),
    (_broker_host("0"), "broker.host: '0' is the wildcard address"),
    (_broker_host("0.0"), "broker.host: '0.0' is the wildcard address"),
    (_broker_host("000.000.000.000"), "wildcard address"),
    (_two_on(15020), "port: 15020 is also bonder1's"),
    (_mqtt_prefix("waferline/+/sputter1"), "prefix"),
    (_mqtt_prefix("waferline/#"), "prefix"),
])
def test_line_and_address_errors_name_the_tool(tmp_path: Path, change: Callable[[dict[str, Any]], None],
                                               said_part: str) -> None:
    bad = write(tmp_path / "line.yaml", edited(LINE_DIR, "emulated", change))
    for verb in ("sim up --line", "run --line"):
        code, said = invoke(*VERBS[verb](bad))
        assert code == 2 and said_part in said, said


def test_a_port_in_use_is_a_one_line_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        bad = write(tmp_path / "line.yaml", edited(LINE_DIR, "emulated", _tool(0, port=port)))
        code, said = invoke(*VERBS["sim up --line"](bad), "--run-dir", str(tmp_path / "sim"))
    assert code == 2 and "tools.0(bonder1).address: cannot serve it" in said, said


def _modbus_var(name: str, **changes: Any) -> Callable[[dict[str, Any]], None]:
    def change(d: dict[str, Any]) -> None:
        d["variables"][name].update(changes)
    return change


@pytest.mark.parametrize(("profile", "change", "said_part"), [
    ("bonder-modbus", _modbus_var("job_id", address=65535), "runs past 65535"),
    ("bonder-modbus", _modbus_var("hold_s", type="uint16", scale=0.01, offset=0), "but the recipe allows"),
    ("sputterer-mqtt", lambda d: d.setdefault("topics", {}).update(command="tools/sputter/cmd"),
     "lacks {prefix}"),
    ("sputterer-mqtt", lambda d: d.setdefault("topics", {}).update(status="{prefix}/{oops}"),
     "may hold only {prefix} and {client}"),
])
def test_profile_checks(tmp_path: Path, profile: str, change: Callable[[dict[str, Any]], None],
                        said_part: str) -> None:
    bad = write(tmp_path / f"{profile}.yaml", edited(PROFILE_DIR, profile, change))
    code, said = invoke(*VERBS["profiles check"](bad))
    assert code == 2 and said_part in said, said


def _bond_by(kind: str | None) -> Callable[[dict[str, Any]], None]:
    def change(d: dict[str, Any]) -> None:
        for item in d["steps"]:
            for step in item.get("steps", [item]):
                if "bond" in step.get("effect", {}):
                    step["kind"] = kind
                    if kind is None:
                        step.pop("recipe", None)
                    else:
                        step["recipe"] = yaml.safe_load((RECIPE.parent / f"{kind}.yaml").read_text())
                    return
    return change


@pytest.mark.parametrize(("kind", "said_part"), [
    (None, "effect.bond: changes the stack, so needs a tool: kind one of ['bonder']"),
    ("coater", "effect.bond: a coater cannot do it; kind one of ['bonder']"),
])
def test_a_stack_change_needs_a_tool_that_can_make_it(tmp_path: Path, kind: str | None,
                                                      said_part: str) -> None:
    bad = write(tmp_path / "flow.yaml", edited(FLOW_DIR, "flow-a", _bond_by(kind)))
    code, said = invoke("check", str(bad))
    assert code == 2 and said_part in said, said


def test_the_shipped_configs_still_pass(tmp_path: Path) -> None:
    data = copy.deepcopy(yaml.safe_load(shipped(LINE_DIR, "emulated")))
    assert data["tools"]
    for flow in ("flow-a", "flow-b", "flow-c", "flow-d", "flow-e"):
        assert invoke("check", flow)[0] == 0
    assert invoke("profiles", "check")[0] == 0
