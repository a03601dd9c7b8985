"""Flows A and B as data: loading, recipes validated per kind, expansion for N wafers, `waferline check`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from drivers.errors import ConfigError
from drivers.kinds import KINDS
from sequencer.process.flow import FLOW_DIR, Flow, RepeatSpec, Step, StepSpec, expand, load_flow
from waferline.check_cmd import key_values
from waferline.cli import app

runner = CliRunner()


def spec_ids(flow: Flow) -> list[str]:
    return [s.id for item in flow.steps for s in (item.steps if isinstance(item, RepeatSpec) else [item])]


def test_flows_load_by_name_and_path() -> None:
    a = load_flow("flow-a")
    assert (a.name, a.wafers.default, a.wafers.min, a.wafers.max) == ("flow-a", 4, 2, 8)
    assert a.substrate.diameter_mm == 300 and 50 <= a.substrate.thickness_um <= 725
    assert load_flow(FLOW_DIR / "flow-b.yaml").name == "flow-b"
    assert load_flow(str(FLOW_DIR / "flow-b.yaml")).title.startswith("Stack with heat-radiation")


def test_every_row_of_the_tables_is_there() -> None:
    rows = {i.rstrip("abcdefg") for i in spec_ids(load_flow("flow-a"))}
    assert rows == {f"A{n}" for n in range(1, 17)}
    rows_b = {i.rstrip("abcdefg") for i in spec_ids(load_flow("flow-b"))}
    assert rows_b == {f"B{n}" for n in range(0, 15)}  # B0: load the lowermost device-packaged wafer


def test_recipes_are_instances_of_the_kinds_models() -> None:
    for name in ("flow-a", "flow-b"):
        for step in expand(load_flow(name)):
            if step.kind is None:
                assert step.recipe is None and step.effect.load is not None
            else:
                assert isinstance(step.recipe, KINDS[step.kind].recipe_model), step.uid


def recipe(steps: list[Step], uid: str) -> dict[str, Any]:
    step = next(s for s in steps if s.uid == uid)
    assert step.recipe is not None
    return step.recipe.model_dump()


def test_key_ranges_of_the_documents() -> None:
    a = expand(load_flow("flow-a"), 2)
    assert 10 <= recipe(a, "A5.w1")["target_thickness_um"] <= 75  # insulating epoxy
    assert 50 <= recipe(a, "A14a")["target_thickness_um"] <= 90  # resin potting
    assert recipe(a, "A12a.w2")["fill_vias"] is True
    b = expand(load_flow("flow-b"), 2)
    assert recipe(b, "B13")["material"] == "Al" and b[-3].uid == "B13" and b[-3].kind == "sputterer"
    assert 100 <= recipe(b, "B13")["thickness_nm"] <= 1000  # 0.1-1 um heat-radiation layer


@pytest.mark.parametrize("wafers", [2, 4, 8])
def test_expansion_for_n_wafers(wafers: int) -> None:
    steps = expand(load_flow("flow-a"), wafers)
    uids = [s.uid for s in steps]
    assert len(uids) == len(set(uids)) and [s.index for s in steps] == list(range(len(steps)))
    bonds = [s for s in steps if s.effect.bond is not None]
    assert [s.uid for s in bonds] == [f"A6.w{k}" for k in range(2, wafers + 1)]
    assert [s.touches for s in bonds] == [(k - 1, k) for k in range(2, wafers + 1)]
    coats = [s for s in steps if s.spec_id == "A5"]
    assert [(s.uid, s.wafer) for s in coats] == [(f"A5.w{k}", k) for k in range(1, wafers)]
    assert uids.index("A4g") < uids.index("A5.w1") < uids.index("A6.w2")  # A4 before the first bond
    assert uids.count("A4a") == 1 and uids[0] == "A1" and uids[-1] == "A16"
    assert [s.wafer for s in steps if s.spec_id == "A12b"] == list(range(2, wafers))  # not the uppermost
    assert {s.wafer for s in steps if s.spec_id.startswith("A13")} == {wafers}
    dice = steps[-1]
    assert dice.touches == tuple(range(1, wafers + 1)) and dice.final_for == dice.touches
    assert all(s.stack_size == wafers for s in steps)
    assert steps[0].kind is None and steps[0].face is None


def test_flow_b_thins_each_wafer_before_its_bond() -> None:
    steps = expand(load_flow("flow-b"), 3)
    uids = [s.uid for s in steps]
    assert uids.index("B1a.w3") < uids.index("B2b.w3")
    assert all(s.before_bond for s in steps if s.spec_id in ("B1a", "B1b"))
    assert [(s.wafer, s.face) for s in steps if s.spec_id in ("B11", "B13")] == [(1, "back"), (1, "back")]


def test_default_wafer_count() -> None:
    assert len([s for s in expand(load_flow("flow-b")) if s.effect.bond]) == 3


def test_step_spec_refuses_bad_references() -> None:
    base = {"id": "X1", "fig": "1", "title": "t", "wafer": "lowermost", "face": "front"}
    sputter = {**base, "kind": "sputterer", "recipe": {"material": "Al", "thickness_nm": 100}}
    seed = {"material": "Al", "role": "seed"}
    with pytest.raises(ValueError, match="sputterer result has no field 'x_um'"):
        StepSpec.model_validate({**sputter, "effect": {"layer": {**seed, "thickness_um": "result.x_um"}}})
    measured = {**seed, "thickness_um": "result.film_thickness_nm"}
    with pytest.raises(ValueError, match="nominal: needed for check mode"):
        StepSpec.model_validate({**sputter, "effect": {"layer": measured}})
    with pytest.raises(ValueError, match="a recipe needs a kind"):
        StepSpec.model_validate({**base, "recipe": {"x": 1}})


def test_unreadable_and_invalid_files_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_flow(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_flow(broken)
    data = yaml.safe_load((FLOW_DIR / "flow-a.yaml").read_text())
    data["substrate"]["thickness_um"] = 900
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as err:
        load_flow(bad)
    assert str(bad) in str(err.value)
    assert "substrate.thickness_um" in str(err.value) and "allowed 50-725" in str(err.value)
    data["substrate"]["thickness_um"] = 300
    data["steps"][0]["id"] = "A2a"
    bad.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match="step A2a: duplicate step id"):
        load_flow(bad)


def test_cli_check_table_and_claims() -> None:
    res = runner.invoke(app, ["check", "flow-a", "--wafers", "2"])
    assert res.exit_code == 0, res.output
    for text in ("A6.w2", "A12a.w2", "claims", "flow-a with 2 wafers: ok"):
        assert text in res.output
    a12 = next(s for s in expand(load_flow("flow-a"), 2) if s.uid == "A12a.w2")
    assert key_values(a12) == ("metal=Cu current_density_ma_cm2=20 plating_time_s=1400 plated_area_cm2=250 "
                               "fill_vias=True")


def test_cli_check_json() -> None:
    res = runner.invoke(app, ["check", "flow-b", "--wafers", "8", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["ok"] and doc["wafers"] == 8 and len(doc["claims"]) == 7 and not doc["violations"]
    assert doc["steps"][0]["uid"] == "B0" and len(doc["stack"]["bonds"]) == 7


def test_cli_check_refuses_a_bad_flow(tmp_path: Path) -> None:
    data = yaml.safe_load((FLOW_DIR / "flow-a.yaml").read_text())
    repeat = next(s for s in data["steps"] if "repeat" in s)
    repeat["steps"][1]["effect"]["bond"]["upper_face"] = "front"
    path = tmp_path / "f2f.yaml"
    path.write_text(yaml.safe_dump(data))
    res = runner.invoke(app, ["check", str(path), "--wafers", "2"])
    assert res.exit_code == 1
    assert "step A6.w2: front-to-front-bond: lower front to upper front" in res.output
    assert "step stack: claim-2:" in res.output


def test_cli_check_exit_2(tmp_path: Path) -> None:
    assert runner.invoke(app, ["check", "no-such-flow"]).exit_code == 2
    res = runner.invoke(app, ["check", "flow-a", "--wafers", "9"])
    assert res.exit_code == 2 and "range 2-8" in res.output
    data = yaml.safe_load((FLOW_DIR / "flow-a.yaml").read_text())
    data["steps"][1]["recipe"]["thickness_nm"] = 5
    path = tmp_path / "range.yaml"
    path.write_text(yaml.safe_dump(data))
    res = runner.invoke(app, ["check", str(path)])
    assert res.exit_code == 2
    assert "step A2a (sputterer): recipe.thickness_nm" in res.output and "allowed 10-3000" in res.output
