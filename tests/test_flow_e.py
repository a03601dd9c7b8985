"""Flow E (seed 004, a double-sided wafer-level package): the traveler's structure, each refusal rule on
a mutated flow-e, the caption-stage claims, and a run on the emulated line."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from drivers.errors import ConfigError
from drivers.line import LineConfig
from sequencer.process.check import CheckReport, check_flow
from sequencer.process.flow import load_flow
from sequencer.process.traveler import Stack
from sequencer.run.control import RunState
from sequencer.run.run import start_run
from sim_tools.line import EmulatedLine
from tests.test_check_rules import Mutation, Raw, bad_flow, messages, pop, spec
from tests.test_check_rules import refused as refused_as
from tests.test_flow_d import move
from waferline.cli import app


def flow_e(tmp_path: Path, mutate: Mutation) -> Path:
    return bad_flow(tmp_path, mutate, base="flow-e")


def refused(path: Path, rule: str) -> CheckReport:
    return refused_as(path, rule, wafers=None)


def rules(report: CheckReport) -> set[str]:
    return {v.rule for v in report.violations}


def assert_double_sided(stack: Stack) -> None:
    """Seed 004's package on the traveler: posts exposed through the front seal, the re-wiring's via
    ends revealed at the back and exposed through the back seal, terminals on both faces."""
    [w] = stack.wafers
    assert w.thinned_by == ["E10a", "E10b"] and 85 < w.thickness_um < 95
    [holes] = w.holes
    assert (holes.lined_by, holes.filled_by, holes.revealed_by) == ("E3a", "E5c", "E10b")
    assert holes.depth_um > w.thickness_um
    front = {la.role: la for la in w.present("front")}
    assert front["rewiring"].material == "Cu" and front["via_electrode"].step == "E5c"
    assert front["resin_seal"].covers is None and front["resin_seal"].last_step == "E9"
    assert abs(front["post"].thickness_um - front["resin_seal"].thickness_um) < 1.0  # polished flush
    removed = {la.removed_by for la in w.front if la.role in ("seed", "barrier", "resist")}
    assert removed == {"E5d", "E6d", "E7"}
    [seal] = w.present("back", "resin_seal")
    assert seal.opened_by == "E12" and seal.opened_um is not None and seal.opened_um >= seal.thickness_um
    assert [la.step for la in w.present("front", "solder")] == ["E13"]
    assert [la.step for la in w.present("back", "solder")] == ["E14"]
    assert not stack.diced  # the captions end at the terminals


def test_flow_e_passes_with_the_caption_stages() -> None:
    report = check_flow(load_flow("flow-e"))
    assert report.ok, [f"{v.step}: {v.rule}: {v.message}" for v in report.violations]
    assert report.wafers == 1 and [c.claim for c in report.claims] == [1, 2, 3, 4, 5]
    assert_double_sided(report.stack)
    assert report.stack.wafer(1).thickness_um == 90


def test_waferline_check_flow_e(tmp_path: Path) -> None:
    runner = CliRunner()
    done = runner.invoke(app, ["check", "flow-e"])
    assert done.exit_code == 0, done.output
    assert "E10b" in done.output and "flow-e with 1 wafers: ok" in done.output
    done = runner.invoke(app, ["check", str(flow_e(tmp_path, lambda d: pop(d, "E7")))])
    assert done.exit_code == 1 and "step E8a: exposed-metal-film:" in done.output


def test_double_sided_flow_runs_exactly_one_wafer(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="a double_sided flow runs exactly one wafer"):
        load_flow(flow_e(tmp_path, lambda d: d.update(wafers={"default": 2, "min": 1, "max": 2})))


def test_seal_over_the_exposed_metal_film(tmp_path: Path) -> None:
    report = refused(flow_e(tmp_path, lambda d: pop(d, "E7")), "exposed-metal-film")
    assert messages(report, "exposed-metal-film").startswith(
        "E8a: resin seal over the front's exposed Ti barrier (E4a)")
    assert "exposed Cu seed (E4b) left on the front" in messages(report, "claim-1")


def test_back_polish_needs_the_front_sealed(tmp_path: Path) -> None:
    def early(d: Raw) -> None:
        move(d, "E10a", before="E8a")
        move(d, "E10b", before="E8a")

    report = refused(flow_e(tmp_path, early), "back-polish-order")
    assert {v.step for v in report.violations if v.rule == "back-polish-order"} == {"E10a", "E10b"}
    assert "back polished before the front seal" in messages(report, "claim-5")


def test_back_seal_after_the_back_polish(tmp_path: Path) -> None:
    report = refused(flow_e(tmp_path, lambda d: move(d, "E11a", before="E10a")), "back-seal-order")
    assert messages(report, "back-seal-order").startswith("E11a: back sealed before the back polish")
    assert "back sealed before its polish" in messages(report, "claim-5")


def test_back_polish_must_reach_the_rewiring(tmp_path: Path) -> None:
    report = refused(flow_e(tmp_path, lambda d: spec(d, "E10b")["recipe"].update(target_thickness_um=105)),
                     "back-seal-order")
    assert "the back polish has not reached the re-wiring" in messages(report, "terminals-exposed")
    assert "claim-3" in rules(report)


def test_back_seal_opening_must_clear_the_seal(tmp_path: Path) -> None:
    report = refused(flow_e(tmp_path, lambda d: spec(d, "E12")["recipe"].update(target_depth_um=20)),
                     "seal-opening-depth")
    assert "E12: opening 20 um into the 29.1 um epoxy resin_seal" in messages(report, "seal-opening-depth")
    assert "opened only 20 um deep" in messages(report, "terminals-exposed")


def test_no_terminals_on_an_unsealed_back(tmp_path: Path) -> None:
    def unsealed(d: Raw) -> None:
        for step_id in ("E11a", "E11b", "E12"):
            pop(d, step_id)

    report = refused(flow_e(tmp_path, unsealed), "face-not-sealed")
    assert messages(report, "face-not-sealed") == (
        "E14: wafer 1: no terminals on the back yet: the back is not sealed with resin yet (Fig. 15(f)-(g))")
    assert "claim-3" in rules(report)


def test_front_terminals_need_the_posts_exposed(tmp_path: Path) -> None:
    report = refused(flow_e(tmp_path, lambda d: pop(d, "E9")), "terminals-exposed")
    assert "epoxy resin_seal (E8a) still covers the posts" in messages(report, "terminals-exposed")
    assert "claim-2" in rules(report)


def test_front_terminals_before_the_front_seal(tmp_path: Path) -> None:
    report = refused(flow_e(tmp_path, lambda d: move(d, "E13", before="E8a")), "face-not-sealed")
    assert "E13 before the front was sealed and opened" in messages(report, "claim-5")


def test_missing_posts(tmp_path: Path) -> None:
    report = refused(flow_e(tmp_path, lambda d: pop(d, "E6c")), "claim-1")
    assert "no Cu post on the front" in messages(report, "claim-1")
    assert "there are no Cu posts on the front" in messages(report, "terminals-exposed")


def test_rewiring_fills_only_lined_holes(tmp_path: Path) -> None:
    def unlined(d: Raw) -> None:
        for step_id in ("E3a", "E4a", "E4b"):
            spec(d, step_id)["effect"]["layer"]["lines_holes"] = False

    report = refused(flow_e(tmp_path, unlined), "holes-not-lined")
    assert messages(report, "holes-not-lined").startswith("E5c: wafer 1: no lined, unfilled holes")


def test_grind_start_must_match_the_wafer(tmp_path: Path) -> None:
    report = refused(flow_e(tmp_path, lambda d: spec(d, "E10a")["recipe"].update(start_thickness_um=600)),
                     "grind-thickness")
    assert "recipe start_thickness_um 600 but wafer 1 is 725 um" in messages(report, "grind-thickness")


def test_out_of_range_values_refuse_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"step E10a \(grinder\): recipe: back_grind target below 50 um"):
        load_flow(flow_e(tmp_path, lambda d: spec(d, "E10a")["recipe"].update(target_thickness_um=40)))
    with pytest.raises(ConfigError, match=r"step E12 \(etcher\): recipe\.target_depth_um: polymer_open"):
        load_flow(flow_e(tmp_path, lambda d: spec(d, "E12")["recipe"].update(target_depth_um=150)))


async def test_flow_e_runs_on_the_emulated_line(line: tuple[LineConfig, EmulatedLine], runs: Path) -> None:
    config, _ = line
    outcome = await start_run("flow-e", config)
    assert outcome.state is RunState.COMPLETE, outcome.held_reason
    assert outcome.claims_ok, [c for c in outcome.claims if not c.ok]
    assert [str(w.state) for w in outcome.stack.wafers] == ["PROCESSED"]
    assert_double_sided(outcome.stack)
    assert outcome.stack.wafer(1).holes[0].measured  # the etched depth the tool reported
