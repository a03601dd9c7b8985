"""Flow refusal rules: each rule refuses a small bad flow, written in tmp_path by mutating a shipped flow."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from drivers.errors import ConfigError
from sequencer.process.check import CheckReport, check_flow
from sequencer.process.flow import FLOW_DIR, expand, load_flow

Raw = dict[str, Any]
Mutation = Callable[[Raw], object]


def spec(data: Raw, step_id: str) -> Raw:
    """The raw step mapping with this id, inside or outside repeat blocks."""
    for item in data["steps"]:
        for s in item.get("steps", [item]):
            if s.get("id") == step_id:
                return s
    raise KeyError(step_id)


def pop(data: Raw, step_id: str) -> Raw:
    """Remove a step from wherever it is and return it."""
    for items in [data["steps"], *[i["steps"] for i in data["steps"] if "repeat" in i]]:
        for i, s in enumerate(items):
            if s.get("id") == step_id:
                return items.pop(i)
    raise KeyError(step_id)


def bad_flow(tmp_path: Path, mutate: Mutation, base: str = "flow-a") -> Path:
    data = copy.deepcopy(yaml.safe_load((FLOW_DIR / f"{base}.yaml").read_text()))
    mutate(data)
    path = tmp_path / f"bad-{base}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def refused(path: Path, rule: str, wafers: int | None = 2) -> CheckReport:
    """The flow at `path` is refused under `rule` (wafers=None: the flow's default count)."""
    report = check_flow(load_flow(path), wafers)
    assert not report.ok
    assert rule in {v.rule for v in report.violations}, [f"{v.step}: {v.rule}" for v in report.violations]
    return report


def messages(report: CheckReport, rule: str) -> str:
    return "\n".join(f"{v.step}: {v.message}" for v in report.violations if v.rule == rule)


@pytest.mark.parametrize("flow", ["flow-a", "flow-b"])
@pytest.mark.parametrize("wafers", [2, 4, 8])
def test_shipped_flows_pass(flow: str, wafers: int) -> None:
    report = check_flow(load_flow(flow), wafers)
    assert report.ok, [f"{v.step}: {v.rule}: {v.message}" for v in report.violations]
    assert all(c.ok for c in report.claims) and len(report.claims) == 7


def test_front_to_front_bond(tmp_path: Path) -> None:
    path = bad_flow(tmp_path, lambda d: spec(d, "A6")["effect"]["bond"].update(upper_face="front"))
    report = refused(path, "front-to-front-bond", wafers=3)
    assert {v.step for v in report.violations if v.rule == "front-to-front-bond"} == {"A6.w2", "A6.w3"}
    assert "claim-2" in {v.rule for v in report.violations}


def test_back_to_back_bond(tmp_path: Path) -> None:
    path = bad_flow(tmp_path, lambda d: spec(d, "A6")["effect"]["bond"].update(lower_face="back"))
    report = refused(path, "back-to-back-bond")
    assert "bond-insulating-layer" in {v.rule for v in report.violations}  # the back carries no epoxy


@pytest.mark.parametrize(("mutate", "text"), [
    (lambda d: spec(d, "B13").update(face="front"), "BACK of the LOWERMOST"),
    (lambda d: spec(d, "B13").update(wafer="uppermost"), "BACK of the LOWERMOST"),
    (lambda d: spec(d, "B13")["recipe"].update(material="Ti"), "Cu, Al or an alloy"),
    (lambda d: spec(d, "B13")["recipe"].update(thickness_nm=2000), "outside 0.1-1 um"),
    (lambda d: spec(d, "B13").update(
        kind="plater", recipe={"metal": "Cu", "plating_time_s": 60, "plated_area_cm2": 707},
        effect={"layer": {"material": "recipe.metal", "role": "heat_radiation", "thickness_um": 0.44}}),
     "thin film"),
    (lambda d: d["steps"].append(pop(d, "B13")), "after dicing"),
], ids=["front", "uppermost", "Ti", "thick", "plated", "after-dicing"])
def test_heat_radiation_layer(tmp_path: Path, mutate: Mutation, text: str) -> None:
    report = refused(bad_flow(tmp_path, mutate, "flow-b"), "heat-radiation-layer")
    assert text in messages(report, "heat-radiation-layer")
    assert "claim-3" in {v.rule for v in report.violations}


def test_dicing_before_the_last_bond(tmp_path: Path) -> None:
    def mutate(d: Raw) -> None:
        d["steps"].insert(next(i for i, s in enumerate(d["steps"]) if "repeat" in s), pop(d, "A16"))

    report = refused(bad_flow(tmp_path, mutate), "dicing-before-bonding", wafers=4)
    assert "0 of 3 bonds made" in messages(report, "dicing-before-bonding")
    assert {"after-dicing", "claim-7"} <= {v.rule for v in report.violations}


def test_plating_without_seed(tmp_path: Path) -> None:
    report = refused(bad_flow(tmp_path, lambda d: pop(d, "A4b")), "plating-without-seed")
    assert "A4e: no seed layer on the front of wafer 1" in messages(report, "plating-without-seed")


@pytest.mark.parametrize(("mutate", "text"), [
    (lambda d: spec(d, "A5")["recipe"].update(target_thickness_um=80), "outside 10-75 um"),
    (lambda d: spec(d, "A5")["recipe"].update(target_thickness_um=8), "outside 10-75 um"),
    (lambda d: spec(d, "A5")["recipe"].update(material="resist"), "must be polyimide or epoxy"),
], ids=["thick", "thin", "resist"])
def test_insulating_layer(tmp_path: Path, mutate: Mutation, text: str) -> None:
    report = refused(bad_flow(tmp_path, mutate), "insulating-layer")
    assert text in messages(report, "insulating-layer") and "A5.w1" in messages(report, "insulating-layer")
    assert "claim-4" in {v.rule for v in report.violations}


def _resin_on_back(d: Raw) -> None:
    spec(d, "A14a")["face"] = spec(d, "A14b")["face"] = "back"


def _resin_after_dicing(d: Raw) -> None:
    d["steps"] += [pop(d, "A14a"), pop(d, "A14b")]


def _resin_too_thick(d: Raw) -> None:
    spec(d, "A14a")["recipe"]["target_thickness_um"] = 95
    spec(d, "A14b")["effect"]["update"]["nominal"] = 92


@pytest.mark.parametrize(("mutate", "text"), [
    (_resin_on_back, "FRONT of the UPPERMOST"), (_resin_after_dicing, "after dicing"),
    (_resin_too_thick, "outside 50-90 um"),
], ids=["back", "after-dicing", "thick"])
def test_resin_sealing_layer(tmp_path: Path, mutate: Mutation, text: str) -> None:
    report = refused(bad_flow(tmp_path, mutate), "resin-sealing-layer")
    assert text in messages(report, "resin-sealing-layer")
    assert "claim-5" in {v.rule for v in report.violations}


def _split_rewiring_and_via(d: Raw) -> None:
    plate = spec(d, "A12a")
    plate["recipe"]["fill_vias"] = False
    plate["effect"]["plate"]["rewiring_and_via"] = False


@pytest.mark.parametrize(("mutate", "text"), [
    (lambda d: spec(d, "A12a")["recipe"].update(metal="Ni"), "must be Cu or a Cu alloy"),
    (_split_rewiring_and_via, "opened through-holes stay empty"),
    (lambda d: spec(d, "A12a")["recipe"].update(fill_vias=False), "does not fill vias"),
], ids=["nickel", "split", "no-fill"])
def test_rewiring_and_via_in_one_plating_step(tmp_path: Path, mutate: Mutation, text: str) -> None:
    report = refused(bad_flow(tmp_path, mutate), "rewiring-via-one-step")
    assert text in messages(report, "rewiring-via-one-step")


def test_split_via_fails_claim_6(tmp_path: Path) -> None:
    report = refused(bad_flow(tmp_path, _split_rewiring_and_via), "claim-6")
    assert "have no via electrode" in messages(report, "claim-6")


def test_recipe_value_outside_the_kinds_range(tmp_path: Path) -> None:
    path = bad_flow(tmp_path, lambda d: spec(d, "A7")["recipe"].update(rf_power_w=5000))
    with pytest.raises(ConfigError) as err:
        load_flow(path)
    text = str(err.value)
    assert str(path) in text and "step A7" in text and "rf_power_w" in text and "allowed 50-3000" in text


def test_wafer_count_outside_the_flows_range(tmp_path: Path) -> None:
    flow = load_flow("flow-a")
    for n in (1, 9):
        with pytest.raises(ConfigError, match="range 2-8"):
            expand(flow, n)
        with pytest.raises(ConfigError, match="range 2-8"):
            check_flow(flow, n)
    with pytest.raises(ConfigError, match=r"wafers\.max.*allowed 2-8"):
        load_flow(bad_flow(tmp_path, lambda d: d["wafers"].update(max=9)))
    narrow = load_flow(bad_flow(tmp_path, lambda d: d["wafers"].update(min=2, default=3, max=4)))
    with pytest.raises(ConfigError, match="range 2-4"):
        expand(narrow, 8)


def test_bond_between_wafers_of_different_diameter(tmp_path: Path) -> None:
    report = refused(bad_flow(tmp_path, lambda d: spec(d, "A1")["effect"]["load"].update(diameter_mm=200)),
                     "bond-diameter")
    assert "A6.w2: wafer 2 is 300 mm, wafer 1 200 mm" in messages(report, "bond-diameter")
    assert "recipe-wafer-size" in {v.rule for v in report.violations}  # 300 mm recipes on a 200 mm wafer


@pytest.mark.parametrize(("depth", "text"), [(350, "deeper than the wafer"), (200, "do not reach")])
def test_through_holes_must_match_the_wafer_thickness(tmp_path: Path, depth: float, text: str) -> None:
    path = bad_flow(tmp_path, lambda d: spec(d, "A7")["recipe"].update(target_depth_um=depth))
    assert text in messages(refused(path, "through-hole-depth"), "through-hole-depth")


def test_hole_opening_must_clear_the_insulating_layer(tmp_path: Path) -> None:
    path = bad_flow(tmp_path, lambda d: spec(d, "A10")["recipe"].update(target_depth_um=10))
    assert "25 um epoxy layer below" in messages(refused(path, "hole-opening"), "hole-opening")


def test_grinder_start_must_match_the_wafer(tmp_path: Path) -> None:
    path = bad_flow(tmp_path, lambda d: spec(d, "B7b")["recipe"].update(start_thickness_um=500), "flow-b")
    assert "start_thickness_um 500 but wafer 1 is 725 um" in messages(refused(path, "grind-thickness"),
                                                                       "grind-thickness")


def test_effect_material_must_match_the_recipe(tmp_path: Path) -> None:
    path = bad_flow(tmp_path, lambda d: spec(d, "A4b")["effect"]["layer"].update(material="Al"))
    assert "effect says Al but the recipe's material is Cu" in messages(
        refused(path, "recipe-material"), "recipe-material")


def test_step_on_a_wafer_not_yet_bonded(tmp_path: Path) -> None:
    def mutate(d: Raw) -> None:
        repeat = next(s for s in d["steps"] if "repeat" in s)
        repeat["steps"].insert(0, repeat["steps"].pop(2))  # A7 through-holes before the A6 bond

    report = refused(bad_flow(tmp_path, mutate), "not-in-stack")
    assert "A7.w2: wafer 2 is not loaded or bonded into the stack yet" in messages(report, "not-in-stack")


def test_strip_with_nothing_to_strip(tmp_path: Path) -> None:
    report = refused(bad_flow(tmp_path, lambda d: pop(d, "A4c") and pop(d, "A4d")), "missing-layer")
    assert "A4f: no resist layer on the front of wafer 1" in messages(report, "missing-layer")
