"""Flow D (seed 003, a stacked flip-chip package of carriers and chips): the traveler's structure, each
refusal rule on a mutated flow-d, the claims (vias 1-6, traces 7-12), and a run on the emulated line."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from drivers.errors import ConfigError
from drivers.line import LineConfig
from sequencer.process.check import CheckReport, check_flow
from sequencer.process.flow import expand, load_flow
from sequencer.process.traveler import Stack
from sequencer.run.control import RunState
from sequencer.run.run import start_run
from sim_tools.line import EmulatedLine
from tests.test_check_rules import Mutation, Raw, bad_flow, messages, pop, spec
from tests.test_check_rules import refused as refused_as
from waferline.cli import app


def flow_d(tmp_path: Path, mutate: Mutation) -> Path:
    return bad_flow(tmp_path, mutate, base="flow-d")


def refused(path: Path, rule: str) -> CheckReport:
    return refused_as(path, rule, wafers=None)


def move(data: Raw, step_id: str, before: str) -> None:
    """Move a step to just before another one."""
    item = pop(data, step_id)
    at = next(i for i, s in enumerate(data["steps"]) if s.get("id") == before)
    data["steps"].insert(at, item)


def assert_package(stack: Stack) -> None:
    """The finished package as seed 003 describes it, read from the traveler."""
    c1, chip1, chip2, c2 = stack.wafers
    assert [(w.name, w.form, w.carrier_type) for w in stack.wafers] == [
        ("carrier1", "carrier", "substrate"), ("chip1", "chip", None), ("chip2", "chip", None),
        ("carrier2", "carrier", "substrate")]
    flips = {(b.upper, b.lower, b.lower_face, b.upper_face, b.through_role, b.reflowed_by is not None)
             for b in stack.bonds if b.joint == "flip_chip"}
    assert flips == {(2, 1, "front", "front", "bump", True), (3, 4, "front", "front", "bump", True)}
    [attach] = [b for b in stack.bonds if b.joint == "adhesive"]
    assert (attach.lower, attach.upper, attach.lower_face, attach.upper_face) == (2, 3, "back", "back")
    assert attach.through_role == "adhesive" and chip1.present("back", "adhesive")[0].cured
    [fill] = c1.present("front", "encapsulant")
    assert fill.grade == "low-moisture-epoxy-fill" and fill.cured and 340 < fill.thickness_um < 360
    [vias] = c2.holes
    assert vias.filled_by == "D9c" and 630 < vias.depth_um < 670 and vias.seq > fill.seq
    assert [la.material for la in c2.present("back", "solder")] == ["SAC305"]
    assert not c1.present("back", "solder") and not chip2.present("front", "solder")
    assert stack.diced_by == "D11" and stack.diced_seq == len(stack.history) - 1


def test_flow_d_passes_with_seed_003_claims() -> None:
    report = check_flow(load_flow("flow-d"))
    assert report.ok, [f"{v.step}: {v.rule}: {v.message}" for v in report.violations]
    assert report.wafers == 4 and [c.claim for c in report.claims] == [1, 2, 3, 5, 6]
    assert_package(report.stack)
    assert report.stack.materials["elastomer-epoxy-adhesive"]["modulus_gpa"] == 0.4  # on the traveler
    assert report.stack.wafer(1).width_mm == 74 and report.stack.wafer(1).diameter_mm == 240


def test_waferline_check_flow_d(tmp_path: Path) -> None:
    runner = CliRunner()
    done = runner.invoke(app, ["check", "flow-d"])
    assert done.exit_code == 0, done.output
    assert "D9a" in done.output and "flow-d with members carrier1, chip1, chip2, carrier2: ok" in done.output
    bad = flow_d(tmp_path, lambda d: spec(d, "D9a")["recipe"].update(target_depth_um=500))
    done = runner.invoke(app, ["check", str(bad)])
    assert done.exit_code == 1 and "step D9a: via-depth:" in done.output


def test_members_expand_by_name_and_steps_touch_their_assembly() -> None:
    steps = {s.uid: s for s in expand(load_flow("flow-d"))}
    assert (steps["D2"].wafer, steps["D2"].onto, steps["D2"].touches) == (2, 1, (1, 2))
    assert (steps["D5"].wafer, steps["D5"].onto, steps["D5"].touches) == (3, 4, (3, 4))
    assert steps["D4b"].touches == (3,) and steps["D6"].touches == (3, 4)
    assert steps["D7b"].touches == (1, 2, 3, 4) and steps["D9a"].touches == (1, 2, 3, 4)
    assert steps["D11"].final_for == (1, 2, 3, 4) and not steps["D10"].final_for


def test_tab_tape_carriers_pass_under_claim_4(tmp_path: Path) -> None:
    def tab(d: Raw) -> None:
        for m in (d["members"][0], d["members"][3]):
            m.update(carrier="tab_tape", material="polyimide tape", thickness_um=75)
        spec(d, "D9a")["recipe"]["target_depth_um"] = 500  # 75 + 349.1 + 75

    report = check_flow(load_flow(flow_d(tmp_path, tab)))
    assert report.ok, [f"{v.step}: {v.rule}: {v.message}" for v in report.violations]
    assert [c.claim for c in report.claims] == [1, 2, 4, 5, 6]


def test_mixed_carriers_fail_claim_3(tmp_path: Path) -> None:
    report = refused(flow_d(tmp_path, lambda d: d["members"][3].update(carrier="tab_tape")), "claim-3")
    assert "carrier types ['substrate', 'tab_tape']" in messages(report, "claim-3")


def test_flip_chip_active_face_down(tmp_path: Path) -> None:
    path = flow_d(tmp_path, lambda d: spec(d, "D2")["effect"]["bond"].update(upper_face="back"))
    report = refused(path, "flip-chip-orientation")
    assert messages(report, "flip-chip-orientation").startswith("D2: chip1 (2) back onto carrier1 (1) front")
    assert "bumps-missing" in {v.rule for v in report.violations}  # no bumps on the back
    assert "claim-1" in {v.rule for v in report.violations}


def test_each_chip_on_its_own_carrier(tmp_path: Path) -> None:
    report = refused(flow_d(tmp_path, lambda d: spec(d, "D5")["effect"]["bond"].update(onto="carrier1")),
                     "flip-chip-own-carrier")
    assert "chip2 (3) onto carrier1 (1): each chip is bonded to its own carrier (carrier2 (4))" in messages(
        report, "flip-chip-own-carrier")
    assert "already-bonded" in {v.rule for v in report.violations}  # carrier 1 already carries chip 1


def test_flip_chip_needs_bumps(tmp_path: Path) -> None:
    report = refused(flow_d(tmp_path, lambda d: spec(d, "D1b")["effect"]["load"]["layers"].pop()),
                     "bumps-missing")
    assert messages(report, "bumps-missing").startswith("D2: no solder bumps on the front of chip1 (2)")


def test_reflow_profile_must_melt_the_bumps(tmp_path: Path) -> None:
    def eutectic(d: Raw) -> None:
        spec(d, "D3")["recipe"].update(alloy="Pb63Sn37", peak_temp_c=213)

    report = refused(flow_d(tmp_path, eutectic), "bump-reflow")
    assert "D3: reflow profile for Pb63Sn37 peaks at 213 C, outside the SAC305 bumps' window 240-260 C" in (
        messages(report, "bump-reflow"))


def test_attach_and_fill_need_reflowed_joints(tmp_path: Path) -> None:
    report = refused(flow_d(tmp_path, lambda d: pop(d, "D6")), "flip-chip-not-reflowed")
    assert {v.step for v in report.violations if v.rule == "flip-chip-not-reflowed"} == {"D7b", "D8a"}
    assert "never reflowed" in messages(report, "claim-1")


def test_chips_attach_back_to_back(tmp_path: Path) -> None:
    path = flow_d(tmp_path, lambda d: spec(d, "D7b")["effect"]["bond"].update(upper_face="front"))
    report = refused(path, "back-to-back-attach")
    assert "the chips attach non-active BACK to BACK" in messages(report, "back-to-back-attach")


def test_adhesive_over_the_first_chip(tmp_path: Path) -> None:
    report = refused(flow_d(tmp_path, lambda d: pop(d, "D7a")), "attach-adhesive")
    assert "no adhesive on the back of chip1 (2) (it is bare)" in messages(report, "attach-adhesive")
    assert {"missing-layer", "claim-5"} <= {v.rule for v in report.violations}


@pytest.mark.parametrize(("change", "text"), [
    ({"modulus_gpa": 3.0}, "modulus 3 GPa above 1 GPa: not a high-elasticity adhesive"),
    ({"insulating": False}, "is not insulating"),
    ({"family": "polyimide"}, "grade elastomer-epoxy-adhesive is polyimide, the layer is epoxy"),
])
def test_adhesive_grade(tmp_path: Path, change: Raw, text: str) -> None:
    report = refused(flow_d(tmp_path, lambda d: d["materials"]["elastomer-epoxy-adhesive"].update(change)),
                     "adhesive-material")
    assert text in messages(report, "adhesive-material") and text in messages(report, "claim-5")


@pytest.mark.parametrize(("change", "text"), [
    ({"viscosity_pa_s": 40}, "viscosity 40 Pa.s, not low"),
    ({"water_absorption_pct": 0.8}, "water absorption 0.8 %, not low"),
])
def test_fill_resin_grade(tmp_path: Path, change: Raw, text: str) -> None:
    report = refused(flow_d(tmp_path, lambda d: d["materials"]["low-moisture-epoxy-fill"].update(change)),
                     "fill-resin-material")
    assert messages(report, "fill-resin-material").startswith("D8a:") and text in messages(report, "claim-6")


def test_layer_grade_must_be_in_materials(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"step D7a: grade 'silicone' is not in `materials`"):
        load_flow(flow_d(tmp_path, lambda d: spec(d, "D7a")["effect"]["layer"].update(grade="silicone")))


def test_fill_must_fill_the_gap(tmp_path: Path) -> None:
    report = refused(flow_d(tmp_path, lambda d: spec(d, "D8a")["recipe"].update(target_thickness_um=250)),
                     "fill-gap")
    text = messages(report, "fill-gap")
    assert "D8a: resin 250 um in a 349.1 um gap" in text and "leaves chips and bumps bare" in text


def test_fill_after_the_attach(tmp_path: Path) -> None:
    report = refused(flow_d(tmp_path, lambda d: move(d, "D8a", before="D7a")), "fill-between-carriers")
    assert "before the chips are attached" in messages(report, "fill-between-carriers")


def test_vias_after_the_fill(tmp_path: Path) -> None:
    report = refused(flow_d(tmp_path, lambda d: move(d, "D9a", before="D8a")), "via-after-fill")
    assert messages(report, "via-after-fill").startswith("D9a: vias drilled before the resin fill")


def test_vias_cross_carrier_resin_carrier(tmp_path: Path) -> None:
    report = refused(flow_d(tmp_path, lambda d: spec(d, "D9a")["recipe"].update(target_depth_um=500)),
                     "via-depth")
    assert "vias 500 um deep in a 649.1 um package" in messages(report, "via-depth")
    assert "claim-1" in {v.rule for v in report.violations}


def test_balls_only_on_the_second_carriers_outer_face(tmp_path: Path) -> None:
    report = refused(flow_d(tmp_path, lambda d: spec(d, "D10").update(wafer="carrier1")), "balls-outer-face")
    assert "only on the exposed outer face (back) of the second carrier carrier2 (4)" in messages(
        report, "balls-outer-face")
    assert "claim-2" in {v.rule for v in report.violations}


def test_balls_after_the_carriers_are_joined(tmp_path: Path) -> None:
    report = refused(flow_d(tmp_path, lambda d: pop(d, "D9c")), "balls-before-interconnect")
    assert "not filled with metal" in messages(report, "claim-1")


def test_singulation_last(tmp_path: Path) -> None:
    report = refused(flow_d(tmp_path, lambda d: move(d, "D11", before="D10")), "singulate-last")
    assert messages(report, "singulate-last") == (
        "D11: singulated before the balls: singulation is the last step of the package")
    assert "after-dicing" in {v.rule for v in report.violations}


def test_out_of_range_recipe_and_unknown_member(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"step D2 \(bonder\): recipe: die_attach needs temp_c 100-250 C"):
        load_flow(flow_d(tmp_path, lambda d: spec(d, "D2")["recipe"].update(temp_c=80)))
    with pytest.raises(ConfigError, match=r"step D5: 'carrier3' is not a member of this flow"):
        load_flow(flow_d(tmp_path, lambda d: spec(d, "D5")["effect"]["bond"].update(onto="carrier3")))
    with pytest.raises(ConfigError, match=r"a carrier needs `carrier: substrate \| tab_tape`"):
        load_flow(flow_d(tmp_path, lambda d: d["members"][0].pop("carrier")))
    with pytest.raises(ConfigError, match="a flipchip flow runs its members"):
        load_flow(flow_d(tmp_path, lambda d: d.update(wafers={"default": 2, "min": 2, "max": 2})))


def traces(d: Raw) -> None:
    """Claim 7's variant: edge traces joining the ball pads of both carriers instead of vias."""
    for step_id in ("D9a", "D9c"):
        pop(d, step_id)
    spec(d, "D9b").update(title="sputter Cu seed on the package edges", effect={"layer": {
        "material": "recipe.material", "role": "seed", "thickness_um": "result.film_thickness_nm",
        "nominal": "recipe.thickness_nm"}})
    at = next(i for i, s in enumerate(d["steps"]) if s.get("id") == "D9d")
    d["steps"].insert(at, {
        "id": "D9c", "fig": "cl.7", "title": "plate Cu edge traces", "kind": "plater", "wafer": "carrier2",
        "face": "back", "recipe": {"metal": "Cu", "current_density_ma_cm2": 20, "plating_time_s": 1400,
                                   "plated_area_cm2": 20},
        "effect": {"edge_traces": {"thickness_um": "result.plated_thickness_um", "nominal": 10.3}}})


def test_edge_traces_are_claims_7_to_12(tmp_path: Path) -> None:
    report = check_flow(load_flow(flow_d(tmp_path, traces)))
    assert report.ok, [f"{v.step}: {v.rule}: {v.message}" for v in report.violations]
    assert [c.claim for c in report.claims] == [7, 2, 8, 10, 11, 12]
    [t] = report.stack.traces
    assert (t.upper, t.lower, t.upper_pads, t.lower_pads, t.metal) == (4, 1, True, True, "Cu")


def test_edge_traces_end_on_both_carriers_ball_pads(tmp_path: Path) -> None:
    def bare(d: Raw) -> None:
        traces(d)
        spec(d, "D1a")["effect"]["load"]["layers"].pop()  # carrier 1 without outer ball pads

    report = refused(flow_d(tmp_path, bare), "trace-ends")
    assert "no ball pads on carrier1 (1)" in messages(report, "trace-ends")
    assert "claim-12" in {v.rule for v in report.violations}


async def test_flow_d_runs_on_the_emulated_line(line: tuple[LineConfig, EmulatedLine], runs: Path) -> None:
    config, _ = line
    outcome = await start_run("flow-d", config, stacks=2)  # a lot of two strips over the pools
    assert outcome.state is RunState.COMPLETE, outcome.held_reason
    assert outcome.claims_ok, outcome.claims_by_stack
    assert len(outcome.stacks) == 2
    for stack in outcome.stacks:
        assert [str(w.state) for w in stack.wafers] == ["PROCESSED"] * 4
        assert_package(stack)
        drill = next(h for h in stack.history if h.step == "D9a")
        assert drill.result is not None and drill.result["endpoint_detected"] is True  # on carrier 1's pads
        assert stack.wafer(4).holes[0].measured
