"""Grinder physics at model level: removal time from rate, gauge stop, CMP vs grind, roughness, aborts,
refusals and the job deadline. Expected values are hand-computed."""

from __future__ import annotations

import asyncio
import random

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from drivers.kinds.grinder import SPINDLE_WINDOWS_RPM, Grinder, GrinderRecipe
from drivers.profiles.base import Value
from sim_tools.clock import VirtualClock
from sim_tools.faults import FaultSet
from sim_tools.model import EmulatedTool, Refused
from sim_tools.physics.grinder import GrinderPhysics

GRIND: dict[str, Value] = {"mode": "back_grind", "start_thickness_um": 725, "target_thickness_um": 100,
                           "spindle_rpm": 4800, "feed_um_s": 2.5}
CMP: dict[str, Value] = {"mode": "cmp", "start_thickness_um": 105, "target_thickness_um": 100,
                         "spindle_rpm": 100, "down_pressure_kpa": 20}


def make(clock: VirtualClock, spread: float = 0.0, seed: int = 1) -> EmulatedTool:
    return EmulatedTool("grinder1", GrinderPhysics(spread=spread), clock, FaultSet(seed=seed), seed)


async def run(tool: EmulatedTool, recipe: dict[str, Value]) -> dict[str, Value]:
    tool.command("start", {"job_id": 1, **recipe})
    async with asyncio.timeout(5):
        await tool.wait_until(lambda t: t.job_outcome != "RUNNING")
    assert tool.job_outcome == "COMPLETED"
    return dict(tool.results)


async def test_back_grind_725_to_100_um_at_2_5_um_s(clock: VirtualClock) -> None:
    res = await run(make(clock), GRIND)
    assert res["process_time_s"] == pytest.approx(250.0)  # 625 um / 2.5 um/s
    assert res["removed_um"] == pytest.approx(625.0)
    assert res["final_thickness_um"] == pytest.approx(100.0)
    assert res["removal_rate_um_min"] == pytest.approx(150.0)
    assert res["surface_roughness_nm"] == pytest.approx(20 * 2.5**0.5, rel=1e-3)  # 31.6 nm Ra


async def test_final_thickness_within_gauge_error(clock: VirtualClock) -> None:
    finals = []
    for seed in range(1, 11):
        res = await run(make(clock, spread=0.01, seed=seed), GRIND)
        final = float(res["final_thickness_um"])
        assert abs(final - 100.0) <= 0.9 + 1e-9  # 3 sigma of a 0.3 um gauge
        assert res["removed_um"] == pytest.approx(725.0 - final, abs=1e-3)
        assert res["process_time_s"] == pytest.approx((725.0 - final) / 2.5, abs=1e-3)
        finals.append(final)
    assert len(set(finals)) > 1


async def test_cmp_is_much_slower_than_grinding(clock: VirtualClock) -> None:
    cmp = await run(make(clock), CMP)
    # Preston: 2.5e-4 um/min/(kPa rpm) x 20 kPa x 100 rpm = 0.5 um/min; 5 um take 600 s
    assert cmp["removal_rate_um_min"] == pytest.approx(0.5)
    assert cmp["process_time_s"] == pytest.approx(600.0)
    grind = await run(make(clock), {**GRIND, "start_thickness_um": 105, "feed_um_s": 0.5})
    assert grind["process_time_s"] == pytest.approx(10.0)  # 5 um at the slowest feed, 0.5 um/s
    assert float(cmp["process_time_s"]) > 50 * float(grind["process_time_s"])


async def test_polish_is_slower_than_cmp_and_rougher(clock: VirtualClock) -> None:
    cmp = await run(make(clock), CMP)
    polish = await run(make(clock), {**CMP, "mode": "polish"})
    assert polish["process_time_s"] == pytest.approx(1500.0)  # 5 um at 0.2 um/min
    assert cmp["surface_roughness_nm"] == 0.5 and polish["surface_roughness_nm"] == 2.0
    grind = await run(make(clock), GRIND)
    assert float(grind["surface_roughness_nm"]) > float(polish["surface_roughness_nm"])


async def test_resin_polish_may_go_below_the_wafer_minimum(clock: VirtualClock) -> None:
    resin = {"start_thickness_um": 60, "target_thickness_um": 10, "down_pressure_kpa": 35, "spindle_rpm": 150}
    res = await run(make(clock), {**CMP, "mode": "polish", **resin})
    assert res["final_thickness_um"] == pytest.approx(10.0)
    assert res["process_time_s"] == pytest.approx(50 / (1e-4 * 35 * 150) * 60)  # 0.525 um/min


async def test_gauge_reads_down_live_and_abort_gives_partial_removal() -> None:
    tool = make(VirtualClock(200.0))
    tool.command("start", {"job_id": 2, **GRIND, "feed_um_s": 1.0})
    await asyncio.sleep(0.3)  # ~60 tool s: 30 s chuck and spin-up, ~30 s grinding
    first = float(tool.snapshot()["gauge_thickness_um"])
    assert tool.snapshot()["spindle_speed_rpm"] == 4800 and tool.snapshot()["coolant_flow_lpm"] == 3.0
    await asyncio.sleep(0.2)  # ~100 tool s in all: ~70 um removed at 1 um/s
    second = float(tool.snapshot()["gauge_thickness_um"])
    assert 725 > first > second > 600
    tool.command("abort", {})
    assert tool.job_outcome == "ABORTED"
    removed = float(tool.results["removed_um"])
    assert 50 < removed < 120
    assert tool.results["final_thickness_um"] == pytest.approx(725 - removed, abs=1e-3)
    assert tool.results["process_time_s"] == pytest.approx(removed, abs=1e-3)  # 1 um/s
    assert tool.results["surface_roughness_nm"] == 0.0  # not measured


async def test_abort_during_setup_removes_nothing() -> None:
    tool = make(VirtualClock(100.0))
    tool.command("start", {"job_id": 3, **GRIND})
    tool.command("abort", {})
    assert (tool.results["removed_um"], tool.results["final_thickness_um"]) == (0.0, 725.0)


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"target_thickness_um": 800}, "must be below the start"),
        ({"target_thickness_um": 725}, "must be below the start"),
        ({"target_thickness_um": 30}, "back_grind target below 50"),
        ({"spindle_rpm": 100}, "back_grind spindle needs 1000-7000"),
        ({"mode": "cmp"}, "cmp spindle needs 20-150"),
        ({"feed_um_s": 6}, "recipe feed_um_s"),
        ({"start_thickness_um": 1200}, "recipe start_thickness_um"),
        ({"target_thickness_um": 5}, "recipe target_thickness_um"),
        ({"mode": "lap"}, "recipe mode"),
    ],
)
async def test_refusals(clock: VirtualClock, change: dict[str, Value], why: str) -> None:
    tool = make(clock)
    with pytest.raises(Refused, match=why):
        tool.command("start", {"job_id": 1, **GRIND, **change})
    assert tool.state == "IDLE" and tool.job_outcome == "NONE"


def test_driver_and_physics_agree() -> None:
    assert Grinder.interlock_inputs == GrinderPhysics().interlocks
    assert set(Grinder.process_values) == set(GrinderPhysics().idle_values())
    assert set(Grinder.result_variables()) == set(GrinderPhysics().initial_results())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(
    mode=st.sampled_from(sorted(SPINDLE_WINDOWS_RPM)), start=st.floats(50, 1000), target=st.floats(10, 1000),
    rpm=st.floats(0, 1), feed=st.floats(0.5, 5.0), kpa=st.floats(7, 35), seed=st.integers(0, 1000),
)
def test_every_valid_recipe_finishes_within_its_deadline(
        mode: str, start: float, target: float, rpm: float, feed: float, kpa: float, seed: int) -> None:
    """`rpm` is a fraction of the mode's spindle window."""
    lo, hi = SPINDLE_WINDOWS_RPM[mode]
    try:
        r = GrinderRecipe.model_validate({
            "mode": mode, "start_thickness_um": start, "target_thickness_um": target,
            "spindle_rpm": lo + rpm * (hi - lo),
            "feed_um_s": feed, "down_pressure_kpa": kpa})
    except ValidationError:
        assume(False)
        return
    plan = GrinderPhysics(spread=0.05).plan(r, random.Random(seed))
    assert 0 < plan.duration_s < r.max_duration_s()
