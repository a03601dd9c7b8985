"""Coater physics at model level: spin curve, printed/potted layers, cure windows and shrinkage,
expose/develop thresholds, strip, aborts and the job deadline. Expected values are hand-computed."""

from __future__ import annotations

import asyncio
import math
import random
from typing import get_args

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from drivers.kinds.coater import Coater, CoaterRecipe, Material, Operation
from drivers.profiles.base import Value
from sim_tools.clock import VirtualClock
from sim_tools.faults import FaultSet
from sim_tools.model import ALARM_INTERLOCK, EmulatedTool, Refused
from sim_tools.physics.coater import CoaterPhysics


def make(clock: VirtualClock, spread: float = 0.0, seed: int = 1) -> EmulatedTool:
    return EmulatedTool("coater1", CoaterPhysics(spread=spread), clock, FaultSet(seed=seed), seed)


async def run(tool: EmulatedTool, **recipe: Value) -> dict[str, Value]:
    tool.command("start", {"job_id": 1, **recipe})
    async with asyncio.timeout(5):
        await tool.wait_until(lambda t: t.job_outcome != "RUNNING")
    assert tool.job_outcome == "COMPLETED"
    return dict(tool.results)


@pytest.mark.parametrize(
    ("material", "rpm", "um"),
    [("polyimide", 2000, 10.0), ("polyimide", 500, 20.0), ("polyimide", 6000, 5.774),
     ("epoxy", 2000, 25.0), ("epoxy", 500, 50.0), ("resist", 2000, 8.0), ("resist", 4500, 8 / 1.5)],
)
async def test_spin_thickness_falls_as_one_over_sqrt_rpm(
        clock: VirtualClock, material: str, rpm: float, um: float) -> None:
    res = await run(make(clock), operation="spin_coat", material=material, spin_rpm=rpm)
    assert res["film_thickness_um"] == pytest.approx(um, abs=1e-3)
    assert res["operation_time_s"] == pytest.approx(5 + 30 + 120)  # dispense, spin, soft bake
    assert res["cure_temp_peak_c"] == pytest.approx(100)  # soft bake
    assert res["resin_used_ml"] == pytest.approx(5.0)


async def test_four_times_the_speed_halves_the_thickness(clock: VirtualClock) -> None:
    slow = await run(make(clock), operation="spin_coat", material="polyimide", spin_rpm=1500)
    fast = await run(make(clock), operation="spin_coat", material="polyimide", spin_rpm=6000)
    assert float(slow["film_thickness_um"]) / float(fast["film_thickness_um"]) == pytest.approx(2.0, rel=1e-3)


async def test_potting_thickness_within_spread(clock: VirtualClock) -> None:
    films = []
    for seed in range(1, 11):
        res = await run(make(clock, spread=0.02, seed=seed), operation="pot", material="epoxy",
                        target_thickness_um=70)
        films.append(float(res["film_thickness_um"]))
    assert all(abs(f - 70) <= 4 * 0.02 * 70 for f in films)  # 4 sigma of a 2 % spread
    assert len(set(films)) == len(films)  # real scatter, seeded per tool


async def test_potting_volume_and_time(clock: VirtualClock) -> None:
    res = await run(make(clock), operation="pot", material="epoxy", target_thickness_um=70)
    ml = math.pi * 15.0**2 * 70e-4  # 300 mm wafer, 706.9 cm2 x 0.007 cm = 4.948 ml
    assert res["resin_used_ml"] == pytest.approx(4.948, abs=1e-3) == pytest.approx(ml, abs=1e-3)
    assert res["operation_time_s"] == pytest.approx(10 + 4.948 / 0.2 + 120, abs=0.01)  # prime, pot, level
    assert res["film_thickness_um"] == 70 and res["shrinkage_pct"] == 0


async def test_print_and_film_laminate_reach_target(clock: VirtualClock) -> None:
    printed = await run(make(clock), operation="print", material="polyimide", target_thickness_um=30)
    assert (printed["film_thickness_um"], printed["operation_time_s"]) == (30, 30 + 20 + 120)
    film = await run(make(clock), operation="film_laminate", material="epoxy", target_thickness_um=25,
                     wafer_diameter_mm=200)
    assert film["film_thickness_um"] == 25
    assert film["operation_time_s"] == pytest.approx(30 + 200 / 5)  # align, roll at 5 mm/s
    assert film["cure_temp_peak_c"] == 90


async def test_polyimide_cure_shrinks_a_third(clock: VirtualClock) -> None:
    res = await run(make(clock), operation="cure", material="polyimide", incoming_thickness_um=10,
                    cure_temp_c=350, cure_time_s=3600, ramp_c_per_min=5)
    assert res["film_thickness_um"] == pytest.approx(6.5)
    assert res["shrinkage_pct"] == pytest.approx(35)
    assert res["cure_temp_peak_c"] == 350
    # N2 purge 300 s, ramp 25->350 C at 5 C/min 3900 s, hold 3600 s, cool 350->60 C 3480 s
    assert res["operation_time_s"] == pytest.approx(11280)


async def test_epoxy_cure_shrinks_a_little(clock: VirtualClock) -> None:
    res = await run(make(clock), operation="cure", material="epoxy", incoming_thickness_um=50,
                    cure_temp_c=160, cure_time_s=5400)
    assert res["film_thickness_um"] == pytest.approx(48.5)
    assert res["shrinkage_pct"] == pytest.approx(3)


@pytest.mark.parametrize(
    ("recipe", "why"),
    [
        ({"operation": "cure", "material": "polyimide", "cure_temp_c": 190}, "polyimide cure needs 200-350"),
        ({"operation": "cure", "material": "polyimide", "cure_temp_c": 360}, "polyimide cure needs 200-350"),
        ({"operation": "cure", "material": "epoxy", "cure_temp_c": 180}, "epoxy cure needs 150-175 C"),
        ({"operation": "cure", "material": "epoxy", "cure_temp_c": 140}, "epoxy cure needs 150-175 C"),
        ({"operation": "strip", "material": "epoxy"}, "strip removes resist only"),
        ({"operation": "pot", "material": "resist"}, "potting is for sealing resin"),
        ({"operation": "expose_develop", "material": "epoxy"}, "photosensitive"),
        ({"operation": "spin_coat", "material": "resist", "spin_rpm": 7000}, "recipe spin_rpm"),
        ({"operation": "pot", "material": "epoxy", "target_thickness_um": 600}, "recipe target_thickness_um"),
        ({"operation": "bake", "material": "epoxy"}, "recipe operation"),
    ],
)
async def test_refusals(clock: VirtualClock, recipe: dict[str, Value], why: str) -> None:
    tool = make(clock)
    with pytest.raises(Refused, match=why):
        tool.command("start", {"job_id": 1, **recipe})
    assert tool.state == "IDLE" and tool.job_outcome == "NONE"


def test_cure_window_edges_are_accepted_and_ignored_by_other_operations() -> None:
    CoaterRecipe(operation="cure", material="epoxy", cure_temp_c=175)
    CoaterRecipe(operation="cure", material="polyimide", cure_temp_c=200)
    CoaterRecipe(operation="spin_coat", material="epoxy", cure_temp_c=300)  # no cure in a spin coat


@pytest.mark.parametrize(
    ("material", "dose", "develop_s", "opened"),
    [("resist", 300, 120, True), ("resist", 100, 120, False), ("resist", 300, 30, False),
     ("polyimide", 300, 120, True), ("polyimide", 250, 120, False)],
)
async def test_expose_develop_opens_only_with_dose_and_develop_time(
        clock: VirtualClock, material: str, dose: float, develop_s: float, opened: bool) -> None:
    # 8 um resist needs 8 x 15 = 120 mJ/cm2 and 48 s at 10 um/min;
    # 10 um polyimide needs 10 x 30 = 300 mJ/cm2 and 120 s at 5 um/min
    um = 8.0 if material == "resist" else 10.0
    res = await run(make(clock), operation="expose_develop", material=material, incoming_thickness_um=um,
                    exposure_dose_mj_cm2=dose, develop_time_s=develop_s)
    assert res["patterns_open"] is opened
    assert res["film_thickness_um"] == pytest.approx(um * 0.98)  # 2 % dark loss
    assert res["operation_time_s"] == pytest.approx(60 + dose / 20 + develop_s + 60)


async def test_strip_removes_the_resist(clock: VirtualClock) -> None:
    res = await run(make(clock), operation="strip", material="resist", incoming_thickness_um=20)
    assert res["film_thickness_um"] == 0
    assert res["operation_time_s"] == pytest.approx(30 + 20 / 5 * 60 + 60)  # prime, 5 um/min, rinse


async def test_abort_mid_strip_leaves_resist() -> None:
    tool = make(VirtualClock(200.0))
    tool.command("start", {"job_id": 2, "operation": "strip", "material": "resist",
                           "incoming_thickness_um": 20})
    await asyncio.sleep(0.5)  # ~100 tool s: 30 s prime, ~70 s stripping at 5 um/min -> ~5.8 um gone
    tool.command("abort", {})
    assert tool.job_outcome == "ABORTED"
    assert 10 < float(tool.results["film_thickness_um"]) < 19


async def test_losing_n2_mid_cure_aborts_with_partial_shrinkage() -> None:
    tool = make(VirtualClock(10000.0))
    tool.command("start", {"job_id": 3, "operation": "cure", "material": "polyimide",
                           "incoming_thickness_um": 10, "cure_temp_c": 350, "cure_time_s": 3600})
    await asyncio.sleep(0.5)  # ~5000 tool s: purge and ramp (4200 s) done, ~800 s into the hold
    tool.set_interlock("n2_ok", False)
    assert (tool.job_outcome, tool.alarm_id) == ("ABORTED", ALARM_INTERLOCK)
    assert 6.5 < float(tool.results["film_thickness_um"]) < 7.2  # 80 % of the shrink is in the ramp
    assert tool.results["cure_temp_peak_c"] == 350
    assert 4200 < float(tool.results["operation_time_s"]) < 7800


def test_driver_and_physics_agree() -> None:
    assert Coater.interlock_inputs == CoaterPhysics().interlocks
    assert set(Coater.process_values) == set(CoaterPhysics().idle_values())
    assert set(Coater.result_variables()) == set(CoaterPhysics().initial_results())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(fields=st.fixed_dictionaries({
    "operation": st.sampled_from(get_args(Operation)), "material": st.sampled_from(get_args(Material)),
    "wafer_diameter_mm": st.floats(100, 300), "spin_rpm": st.floats(500, 6000),
    "spin_time_s": st.floats(5, 300), "target_thickness_um": st.floats(1, 500),
    "incoming_thickness_um": st.floats(0.5, 500), "cure_temp_c": st.floats(50, 400),
    "cure_time_s": st.floats(60, 14400), "ramp_c_per_min": st.floats(1, 20),
    "exposure_dose_mj_cm2": st.floats(10, 2000), "develop_time_s": st.floats(10, 900),
}), seed=st.integers(0, 1000))
def test_every_valid_recipe_finishes_within_its_deadline(fields: dict[str, Value], seed: int) -> None:
    try:
        r = CoaterRecipe.model_validate(fields)
    except ValidationError:
        assume(False)
        return
    plan = CoaterPhysics(spread=0.05).plan(r, random.Random(seed))
    assert 0 < plan.duration_s < r.max_duration_s()
