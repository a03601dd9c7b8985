"""Plater emulator at model level: Faraday thickness, rectifier limit, via fill, abort, deadlines."""

from __future__ import annotations

import asyncio
import itertools
import random

import pytest
from pydantic import ValidationError

from drivers.kinds.plater import PlaterRecipe
from drivers.profiles.base import Value
from sim_tools.clock import VirtualClock
from sim_tools.faults import FaultSet
from sim_tools.model import EmulatedTool, Refused
from sim_tools.physics.plater import PlaterPhysics

CU: dict[str, Value] = {"metal": "Cu", "current_density_ma_cm2": 20.0, "plating_time_s": 600.0,
                        "plated_area_cm2": 707.0}


def make(clock: VirtualClock, spread: float = 0.0, seed: int = 1,
         params: dict[str, float] | None = None) -> EmulatedTool:
    physics = PlaterPhysics(spread=spread, params=params)
    return EmulatedTool("plater1", physics, clock, FaultSet(seed=seed), seed)


async def run(tool: EmulatedTool, recipe: dict[str, Value], job_id: int = 1) -> dict[str, Value]:
    tool.command("start", {"job_id": job_id, **recipe})
    async with asyncio.timeout(5):
        await tool.wait_until(lambda t: t.job_outcome != "RUNNING")
    assert tool.job_outcome == "COMPLETED"
    return dict(tool.results)


async def test_cu_20_ma_cm2_for_10_min_plates_4_4_um(clock: VirtualClock) -> None:
    res = await run(make(clock), CU)
    # 0.020 A/cm2 x 600 s x 63.546 g/mol / (2 x 96485 C/mol x 8.96 g/cm3) = 4.41e-4 cm
    assert res["plated_thickness_um"] == pytest.approx(4.4, rel=0.02)
    assert res["plated_thickness_um"] == pytest.approx(4.410, rel=1e-3)
    assert res["charge_c"] == pytest.approx(0.020 * 707 * 600)  # 14.14 A for 600 s = 8484 C
    assert res["via_fill_pct"] == 0.0  # no via-fill mode, no vias filled
    assert res["bath_temp_avg_c"] == pytest.approx(25.0)


@pytest.mark.parametrize(
    ("metal", "j", "expected_um"),
    [  # J x 600 s x M / (n F rho) x efficiency, by hand
        ("Ni", 20.0, 0.020 * 600 * 58.693 / (2 * 96485 * 8.908) * 1e4 * 0.95),  # 3.89 um
        ("Au", 5.0, 0.005 * 600 * 196.967 / (1 * 96485 * 19.32) * 1e4 * 0.95),  # 3.01 um
        ("Al", 20.0, 0.020 * 600 * 26.982 / (3 * 96485 * 2.70) * 1e4 * 0.85),  # 3.52 um, ionic liquid
    ],
)
async def test_pad_metals(clock: VirtualClock, metal: str, j: float, expected_um: float) -> None:
    res = await run(make(clock), {**CU, "metal": metal, "current_density_ma_cm2": j})
    assert res["plated_thickness_um"] == pytest.approx(expected_um, rel=1e-3)


async def test_rectifier_limit_refuses_on_driver_and_emulator(clock: VirtualClock) -> None:
    tool = make(clock)
    big = {**CU, "current_density_ma_cm2": 40.0, "plated_area_cm2": 1600.0}  # 64 A
    with pytest.raises(Refused, match=r"recipe plated_area_cm2: .*64\.0 A .*60 A rectifier"):
        tool.command("start", {"job_id": 1, **big})
    with pytest.raises(ValidationError) as exc:
        PlaterRecipe.model_validate(big)
    assert exc.value.errors()[0]["loc"] == ("plated_area_cm2",)
    assert tool.state == "IDLE" and tool.job_id == 0
    PlaterRecipe.model_validate({**big, "plated_area_cm2": 1500.0})  # exactly 60 A is allowed


async def test_smaller_rectifier_param_refuses(clock: VirtualClock) -> None:
    tool = make(clock, params={"rectifier_max_a": 20.0})
    with pytest.raises(Refused, match=r"21\.2 A exceeds the 20 A rectifier"):
        tool.command("start", {"job_id": 1, **CU, "current_density_ma_cm2": 30.0})  # 30 x 707 cm2
    assert (await run(tool, CU))["charge_c"] == pytest.approx(8484.0)  # 14.1 A still fits


@pytest.mark.parametrize(
    ("field", "bad"),
    [("current_density_ma_cm2", 60.0), ("current_density_ma_cm2", 0.5), ("bath_temp_c", 40.0),
     ("metal", "Ag"), ("plating_time_s", 0.0)],
)
async def test_recipe_range_refusals(clock: VirtualClock, field: str, bad: Value) -> None:
    with pytest.raises(Refused, match=f"recipe {field}"):
        make(clock).command("start", {"job_id": 1, **CU, field: bad})


async def test_via_fill_in_one_step(clock: VirtualClock) -> None:
    tool = make(clock)
    # 1800 s at 20 mA/cm2: 13.2 um of Cu >= the 10 um via radius: via closed
    res = await run(tool, {**CU, "plating_time_s": 1800.0, "fill_vias": True})
    assert res["plated_thickness_um"] == pytest.approx(13.23, rel=1e-3)
    assert res["via_fill_pct"] == 100.0
    # 900 s: 6.615 um on the wall of a 10 um radius via: 1 - (1 - 0.6615)^2 = 88.5 % filled
    res = await run(tool, {**CU, "plating_time_s": 900.0, "fill_vias": True}, job_id=2)
    assert res["via_fill_pct"] == pytest.approx(88.5, abs=0.1)


async def test_abort_reports_partial_thickness() -> None:
    slow = VirtualClock(200.0)
    tool = make(slow)
    tool.command("start", {"job_id": 3, **CU})
    await asyncio.sleep(0.5)  # ~100 tool s: 60 s pre-wet, then ~40 s of plating
    tool.command("abort", {})
    assert tool.job_outcome == "ABORTED"
    thickness, charge = float(tool.results["plated_thickness_um"]), float(tool.results["charge_c"])
    assert 0.1 < thickness < 1.0  # 4.41 um x 40/600 = 0.29 um
    on_s = charge / 14.14
    assert 20 < on_s < 100
    assert thickness == pytest.approx(4.4103 * on_s / 600, rel=1e-3)  # charge and thickness agree


async def test_thickness_scatter_is_seeded(clock: VirtualClock) -> None:
    runs = [(await run(make(clock, spread=0.02, seed=s), CU))["plated_thickness_um"] for s in (3, 3, 4)]
    assert runs[0] == runs[1] != runs[2]
    assert all(abs(float(r) - 4.41) < 0.5 for r in runs)


def test_every_valid_recipe_finishes_within_its_deadline() -> None:
    physics = PlaterPhysics(spread=0.05)
    rng = random.Random(7)
    for metal, j, t, area, fill in itertools.product(
        ("Cu", "Ni", "Au", "Al"), (1.0, 50.0), (10.0, 36000.0), (1.0, 1200.0), (False, True)
    ):
        recipe = PlaterRecipe(metal=metal, current_density_ma_cm2=j, plating_time_s=t,
                              plated_area_cm2=area, fill_vias=fill)
        assert physics.plan(recipe, rng).duration_s < recipe.max_duration_s()
