"""Flow C (seed 002, a single-wafer CSP): its own rules, each refusing a mutated flow-c, and a run."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers.errors import ConfigError
from drivers.line import LineConfig
from sequencer.process.check import check_flow
from sequencer.process.flow import load_flow
from sequencer.run.control import RunState
from sequencer.run.run import start_run
from sim_tools.line import EmulatedLine
from tests.test_check_rules import Mutation, Raw, bad_flow, messages, pop, refused, spec


def flow_c(tmp_path: Path, mutate: Mutation) -> Path:
    return bad_flow(tmp_path, mutate, base="flow-c")


def test_flow_c_passes_with_csp_claims() -> None:
    report = check_flow(load_flow("flow-c"))
    assert report.ok, [f"{v.step}: {v.rule}: {v.message}" for v in report.violations]
    assert report.wafers == 1 and [c.claim for c in report.claims] == [1, 2, 3, 5]
    front = {la.role: la for la in report.stack.wafer(1).present("front")}
    assert front["first_terminal"].thickness_um == 185 and front["second_resin"].covers is None
    assert (front["first_terminal"].material, front["second_terminal"].material) == ("Pb90Sn10", "Pb63Sn37")


def test_stack_flow_still_needs_two_wafers(tmp_path: Path) -> None:
    def one(d: Raw) -> None:
        d["wafers"] = {"default": 1, "min": 1, "max": 1}

    with pytest.raises(ConfigError, match=r"wafers\.min: .*greater than or equal to 2"):
        load_flow(bad_flow(tmp_path, one))


def test_csp_flow_runs_exactly_one_wafer(tmp_path: Path) -> None:
    def two(d: Raw) -> None:
        d["wafers"] = {"default": 2, "min": 1, "max": 2}

    with pytest.raises(ConfigError, match="a csp flow runs exactly one wafer"):
        load_flow(flow_c(tmp_path, two))


def test_resin_total_above_terminal_height(tmp_path: Path) -> None:
    def thick(d: Raw) -> None:
        spec(d, "C5a")["recipe"]["target_thickness_um"] = 170  # 30 + 170 > 190 um terminal
        spec(d, "C5b")["recipe"]["incoming_thickness_um"] = 170
        spec(d, "C5b")["effect"]["update"]["nominal"] = 165

    report = refused(flow_c(tmp_path, thick), "resin-layers-total", wafers=1)
    assert "more than the 190 um first terminal height" in messages(report, "resin-layers-total")


def test_resin_total_below_50_um(tmp_path: Path) -> None:
    def thin(d: Raw) -> None:
        spec(d, "C2")["recipe"]["target_thickness_um"] = 10
        spec(d, "C5a")["recipe"]["target_thickness_um"] = 30
        spec(d, "C5b")["recipe"]["incoming_thickness_um"] = 30
        spec(d, "C5b")["effect"]["update"]["nominal"] = 29
        spec(d, "C6")["recipe"].update(start_thickness_um=195, target_thickness_um=185)

    report = refused(flow_c(tmp_path, thin), "resin-layers-total", wafers=1)
    assert "total 39 um, outside 50-500 um" in messages(report, "resin-layers-total")


def test_first_resin_not_thinner_than_terminal(tmp_path: Path) -> None:
    def thick(d: Raw) -> None:
        spec(d, "C2")["recipe"]["target_thickness_um"] = 300  # as high as the 300 um ball

    report = refused(flow_c(tmp_path, thick), "first-resin-below-terminal", wafers=1)
    text = messages(report, "first-resin-below-terminal")
    assert "300 um is not thinner than the 300 um first terminal" in text


def test_second_reflow_remelts_first(tmp_path: Path) -> None:
    def pasty(d: Raw) -> None:  # seed 002's own example: Pb55Sn45 first, eutectic second
        for step_id in ("C3", "C4"):
            spec(d, step_id)["recipe"].update(alloy="Pb55Sn45", peak_temp_c=255)

    report = refused(flow_c(tmp_path, pasty), "second-reflow-remelts-first", wafers=1)
    text = messages(report, "second-reflow-remelts-first")
    assert text.startswith("C8:")
    for part in ("Pb63Sn37", "Pb55Sn45", "213 C", "solidus 183 C"):
        assert part in text, text


def test_second_mount_needs_exposed_terminals(tmp_path: Path) -> None:
    def no_grind(d: Raw) -> None:
        pop(d, "C6")

    report = refused(flow_c(tmp_path, no_grind), "terminals-exposed", wafers=1)
    assert "epoxy second_resin still covers them" in messages(report, "terminals-exposed")
    assert "claim-1" in {v.rule for v in report.violations}


def test_grind_that_stops_above_the_terminals_leaves_the_skin(tmp_path: Path) -> None:
    def shallow(d: Raw) -> None:
        spec(d, "C6")["recipe"].update(start_thickness_um=200, target_thickness_um=195)

    refused(flow_c(tmp_path, shallow), "terminals-exposed", wafers=1)


async def test_flow_c_runs_on_the_emulated_line(line: tuple[LineConfig, EmulatedLine], runs: Path) -> None:
    config, _ = line
    outcome = await start_run("flow-c", config)
    assert outcome.state is RunState.COMPLETE, outcome.held_reason
    assert outcome.claims_ok, [c for c in outcome.claims if not c.ok]
    assert [str(w.state) for w in outcome.stack.wafers] == ["PROCESSED"]
