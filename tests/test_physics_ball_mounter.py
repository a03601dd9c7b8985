"""Ball mounter physics at model level: reflow window per alloy, placement, profile, partial results."""

from __future__ import annotations

import asyncio
import itertools
import random

import pytest
from pydantic import ValidationError

from drivers.kinds.ball_mounter import ALLOYS, BallMounterRecipe, reflow_window_c
from drivers.profiles.base import Value
from sim_tools.clock import VirtualClock
from sim_tools.faults import FaultSet
from sim_tools.model import EmulatedTool, Refused
from sim_tools.physics.ball_mounter import BallMounterPhysics

EUTECTIC: dict[str, Value] = {"operation": "mount_reflow", "alloy": "Pb63Sn37", "ball_count": 1000,
                              "peak_temp_c": 213.0, "time_above_liquidus_s": 60.0}
NO_MISSING = {"missing_ppm": 0.0}


def make(clock: VirtualClock, spread: float = 0.0, params: dict[str, float] | None = None,
         seed: int = 1) -> EmulatedTool:
    return EmulatedTool("bm1", BallMounterPhysics(spread, params), clock, FaultSet(seed=seed), seed)


async def finish(tool: EmulatedTool) -> None:
    async with asyncio.timeout(5):
        await tool.wait_until(lambda t: t.job_outcome != "RUNNING")


def recipe(**changes: Value) -> BallMounterRecipe:
    return BallMounterRecipe.model_validate(EUTECTIC | changes)


@pytest.mark.parametrize(
    ("alloy", "low", "high"),
    [("Pb63Sn37", 203, 223), ("SAC305", 240, 260), ("Pb55Sn45", 245, 265), ("Pb83Sn17", 305, 325),
     ("Pb90Sn10", 322, 342)],
)
def test_reflow_window_per_alloy(alloy: str, low: float, high: float) -> None:
    assert reflow_window_c(alloy) == (low, high)
    for ok in (low, high):
        recipe(alloy=alloy, peak_temp_c=ok)
    for bad in (low - 1, high + 1):
        with pytest.raises(ValidationError) as exc:
            recipe(alloy=alloy, peak_temp_c=bad)
        assert f"{alloy} reflow peak must be {low}-{high} C" in str(exc.value)


def test_emulator_refuses_a_peak_outside_the_window(clock: VirtualClock) -> None:
    tool = make(clock)
    with pytest.raises(Refused, match=r"Pb63Sn37 reflow peak must be 203-223 C .* got 240 C"):
        tool.command("start", {"job_id": 1, **EUTECTIC, "peak_temp_c": 240.0})
    with pytest.raises(Refused, match="recipe ball_count"):
        tool.command("start", {"job_id": 1, **EUTECTIC, "ball_count": 100001})
    tool.set_interlock("n2_ok", False)
    with pytest.raises(Refused, match="interlock n2_ok"):
        tool.command("start", {"job_id": 1, **EUTECTIC})


def test_mount_only_does_not_check_the_peak() -> None:
    assert recipe(operation="mount", peak_temp_c=150.0).operation == "mount"


def test_alloy_table_orders_eutectic_below_the_high_lead_alloys() -> None:
    assert ALLOYS["Pb63Sn37"].liquidus_c == 183 == ALLOYS["Pb63Sn37"].solidus_c
    for first in ("Pb55Sn45", "Pb83Sn17", "Pb90Sn10"):  # seed 002: the first terminal melts higher
        assert ALLOYS[first].liquidus_c > ALLOYS["Pb63Sn37"].liquidus_c
    # Only a solidus above the eutectic reflow's hottest peak keeps the first terminal fully solid.
    hottest_second = reflow_window_c("Pb63Sn37")[1]
    assert ALLOYS["Pb90Sn10"].solidus_c > hottest_second
    assert ALLOYS["Pb55Sn45"].solidus_c < hottest_second and ALLOYS["Pb83Sn17"].solidus_c < hottest_second


async def test_placement_count_and_time(clock: VirtualClock) -> None:
    physics = BallMounterPhysics(0.0, NO_MISSING)
    plan = physics.plan(recipe(operation="mount"), random.Random(1))
    assert [(p.name, p.state, p.duration_s) for p in plan.phases] == [
        ("align-flux", "SETUP", 30.0), ("place", "EXECUTING", 2.0)]  # 1000 balls x 2 ms
    tool = make(clock, params=NO_MISSING)
    tool.command("start", {"job_id": 4, **EUTECTIC, "operation": "mount"})
    await finish(tool)
    assert tool.results == {"balls_placed": 1000, "balls_missing": 0, "measured_peak_temp_c": 0.0,
                            "measured_time_above_liquidus_s": 0.0, "reflowed": False}


async def test_missing_balls_are_few_and_seeded(clock: VirtualClock) -> None:
    runs = []
    for seed in (3, 3, 4):
        tool = make(clock, params={"missing_ppm": 1000.0}, seed=seed)  # 100 expected of 100k
        tool.command("start", {"job_id": 1, **EUTECTIC, "operation": "mount", "ball_count": 100000})
        await finish(tool)
        placed, missing = int(tool.results["balls_placed"]), int(tool.results["balls_missing"])
        assert placed + missing == 100000 and 50 <= missing <= 150
        runs.append(missing)
    assert runs[0] == runs[1] != runs[2]
    tool = make(clock, seed=5)  # default 20 ppm: about 2 of 100k
    tool.command("start", {"job_id": 1, **EUTECTIC, "operation": "mount", "ball_count": 100000})
    await finish(tool)
    assert int(tool.results["balls_missing"]) <= 12


async def test_reflow_profile_hand_values(clock: VirtualClock) -> None:
    """Pb63Sn37, peak 213 C, TAL 60 s: preheat 25->103 C at 1.5 C/s = 52 s, soak 103->153 C 90 s,
    153->213 C at 2 C/s = 30 s (above 183 C after 15 s) + 30 s dwell, cool 213->50 C at 2 C/s = 81.5 s
    (15 s of it above 183 C): TAL = 15 + 30 + 15 = 60 s."""
    plan = BallMounterPhysics(0.0).plan(recipe(operation="reflow"), random.Random(1))
    assert [(p.name, round(p.duration_s, 3)) for p in plan.phases] == [
        ("load", 20.0), ("preheat", 52.0), ("soak", 90.0), ("reflow", 60.0), ("cool", 81.5)]
    soak = plan.phases[2].values(0.5)
    assert soak == {"oven_temp_c": 128.0, "balls_placed_now": 0, "conveyor_speed_mm_s": 12.0}
    assert plan.phases[3].values(0.5)["oven_temp_c"] == 213.0  # at the peak, dwelling
    tool = make(clock)
    tool.command("start", {"job_id": 5, **EUTECTIC, "operation": "reflow"})
    await finish(tool)
    assert tool.results == {"balls_placed": 0, "balls_missing": 0, "measured_peak_temp_c": 213.0,
                            "measured_time_above_liquidus_s": 60.0, "reflowed": True}


def test_short_tal_is_set_by_the_ramps() -> None:
    """Peak 223 C (liquidus + 40): the ramps alone spend 20 + 20 s above 183 C, so TAL 40 s has no dwell."""
    plan = BallMounterPhysics(0.0).plan(recipe(peak_temp_c=223.0, time_above_liquidus_s=40.0),
                                        random.Random(1))
    assert plan.results["measured_time_above_liquidus_s"] == 40.0
    assert plan.phases[4].duration_s == 35.0  # reflow zone: 153 -> 223 C at 2 C/s, no dwell


def test_partial_results_follow_the_job() -> None:
    """mount_reflow of 1000 balls: align 30 s, place 2 s, oven from 32 s (see the profile above)."""
    plan = BallMounterPhysics(0.0, NO_MISSING).plan(recipe(), random.Random(1))
    assert plan.partial is not None
    assert plan.partial(31.0)["balls_placed"] == 500
    in_soak = plan.partial(32.0 + 97.0)  # halfway through the soak: 128 C, nothing molten
    assert in_soak["balls_placed"] == 1000
    assert (in_soak["measured_peak_temp_c"], in_soak["reflowed"]) == (128.0, False)
    rising = plan.partial(32.0 + 160.0)  # 18 s into the 2 C/s ramp from 153 C: 189 C, 3 s above 183 C
    assert (rising["measured_peak_temp_c"], rising["measured_time_above_liquidus_s"]) == (189.0, 3.0)
    assert rising["reflowed"] is True


async def test_abort_before_the_oven_reports_no_reflow(clock: VirtualClock) -> None:
    tool = make(clock, params=NO_MISSING)
    tool.command("start", {"job_id": 6, **EUTECTIC})
    tool.command("abort", {})
    assert tool.job_outcome == "ABORTED" and tool.results["reflowed"] is False


def test_every_valid_recipe_finishes_within_its_deadline() -> None:
    physics = BallMounterPhysics(spread=0.02)
    for op, alloy, count, tal in itertools.product(
        ("mount", "reflow", "mount_reflow"), sorted(ALLOYS), (1, 100000), (40.0, 150.0)
    ):
        for peak in reflow_window_c(alloy):
            r = recipe(operation=op, alloy=alloy, ball_count=count, time_above_liquidus_s=tal,
                       peak_temp_c=peak)
            plan = physics.plan(r, random.Random(2))
            assert plan.duration_s < r.max_duration_s(), r
            assert plan.phases[0].state == "SETUP" and all(p.duration_s >= 0 for p in plan.phases)
