"""CVD (PECVD PSG / SiN passivation, Flow B3) physics at model level: rates, index, ranges, abort."""

from __future__ import annotations

import asyncio
import itertools
import random

import pytest

from drivers.kinds.cvd import CvdRecipe
from drivers.profiles.base import Value
from sim_tools.clock import VirtualClock
from sim_tools.faults import FaultSet
from sim_tools.model import EmulatedTool, Refused
from sim_tools.physics.cvd import CvdPhysics

SIN: dict[str, Value] = {
    "film": "SiN", "thickness_nm": 500.0, "deposition_temp_c": 300.0, "rf_power_w": 300.0}


def make(clock: VirtualClock, spread: float = 0.0, seed: int = 1) -> EmulatedTool:
    return EmulatedTool("cvd1", CvdPhysics(spread=spread), clock, FaultSet(seed=seed), seed)


async def finish(tool: EmulatedTool) -> None:
    async with asyncio.timeout(5):
        await tool.wait_until(lambda t: t.job_outcome != "RUNNING")


@pytest.mark.parametrize(
    ("film", "thickness_nm", "temp_c", "power_w", "expected_s"),
    [
        ("SiN", 500.0, 300.0, 300.0, 600.0),  # 50 nm/min at the reference point: 10 min
        ("PSG", 1000.0, 300.0, 300.0, 600.0),  # 100 nm/min: 10 min
        ("SiN", 450.0, 400.0, 1200.0, 300.0),  # 50 x sqrt(4) x 0.9 = 90 nm/min: 5 min
        ("PSG", 800.0, 200.0, 75.0, 872.727),  # 100 x sqrt(1/4) x 1.1 = 55 nm/min: 14.545 min
    ],
)
async def test_deposition_time_hand_computed(
    clock: VirtualClock, film: str, thickness_nm: float, temp_c: float, power_w: float, expected_s: float
) -> None:
    tool = make(clock)
    tool.command("start", {"job_id": 1, "film": film, "thickness_nm": thickness_nm,
                           "deposition_temp_c": temp_c, "rf_power_w": power_w})
    await finish(tool)
    assert tool.job_outcome == "COMPLETED"
    assert tool.results["deposition_time_s"] == pytest.approx(expected_s, abs=0.01)
    assert tool.results["film_thickness_nm"] == pytest.approx(thickness_nm)


@pytest.mark.parametrize(
    ("film", "temp_c", "index"),
    [("SiN", 200.0, 1.90), ("SiN", 300.0, 1.95), ("SiN", 400.0, 2.00), ("PSG", 200.0, 1.45),
     ("PSG", 400.0, 1.45)],
)
async def test_refractive_index_per_film(clock: VirtualClock, film: str, temp_c: float, index: float) -> None:
    tool = make(clock)
    tool.command("start", {"job_id": 2, **SIN, "film": film, "deposition_temp_c": temp_c})
    await finish(tool)
    assert tool.results["refractive_index"] == pytest.approx(index, abs=1e-4)


async def test_scattered_index_stays_in_the_real_world_band(clock: VirtualClock) -> None:
    """Ellipsometry check an engineer would do: SiN ~1.9-2.0, PSG ~1.45, even with 1 % scatter."""
    for seed in range(5):
        for film, low, high in (("SiN", 1.88, 2.02), ("PSG", 1.44, 1.46)):
            tool = make(clock, spread=0.01, seed=seed)
            tool.command("start", {"job_id": 3, **SIN, "film": film})
            await finish(tool)
            assert low <= float(tool.results["refractive_index"]) <= high
            assert 0.5 < float(tool.results["uniformity_pct"]) < 3.0
            assert float(tool.results["film_thickness_nm"]) == pytest.approx(500, rel=0.05)


@pytest.mark.parametrize(
    ("field", "bad"),
    [("deposition_temp_c", 150.0), ("deposition_temp_c", 450.0), ("film", "SiO2"),
     ("thickness_nm", 10.0), ("rf_power_w", 2000.0)],
)
def test_out_of_range_recipe_is_refused(clock: VirtualClock, field: str, bad: Value) -> None:
    tool = make(clock)
    with pytest.raises(Refused, match=f"recipe {field}"):
        tool.command("start", {"job_id": 1, **SIN, field: bad})
    assert tool.job_outcome == "NONE"


def test_lost_gas_or_exhaust_refuses_start(clock: VirtualClock) -> None:
    tool = make(clock)
    for name in ("gas_ok", "exhaust_ok", "vacuum_ok"):
        tool.set_interlock(name, False)
        with pytest.raises(Refused, match=f"interlock {name}"):
            tool.command("start", {"job_id": 1, **SIN})
        tool.set_interlock(name, True)


async def test_process_values_while_depositing_and_partial_film_on_abort() -> None:
    slow = VirtualClock(5000.0)  # SiN 2000 nm: 640 s of setup, then 2400 s of deposition
    tool = make(slow)
    assert tool.read(["chamber_pressure_torr", "susceptor_temp_c", "deposited_nm"]) == {
        "chamber_pressure_torr": 760.0, "susceptor_temp_c": 25.0, "deposited_nm": 0.0}
    tool.command("start", {"job_id": 7, **SIN, "thickness_nm": 2000.0})
    async with asyncio.timeout(5):
        await tool.wait_until(lambda t: t.state == "EXECUTING")
    await asyncio.sleep(0.1)  # ~500 tool s into the deposition
    live = tool.read(["chamber_pressure_torr", "susceptor_temp_c", "deposited_nm"])
    assert live["chamber_pressure_torr"] == 1.5 and live["susceptor_temp_c"] == 300.0
    assert 0 < float(live["deposited_nm"]) < 2000
    tool.command("abort", {})
    assert tool.job_outcome == "ABORTED"
    film, dep_s = float(tool.results["film_thickness_nm"]), float(tool.results["deposition_time_s"])
    assert 0 < film < 2000 and 0 < dep_s < 2400
    assert film / dep_s == pytest.approx(50 / 60, rel=1e-3)  # 50 nm/min: only what really grew
    assert tool.results["refractive_index"] == pytest.approx(1.95)


def test_every_valid_recipe_finishes_within_its_deadline() -> None:
    physics = CvdPhysics(spread=0.05)
    corners = itertools.product(("PSG", "SiN"), (50.0, 2000.0), (200.0, 400.0), (50.0, 1200.0))
    for film, thickness, temp, power in corners:
        recipe = CvdRecipe(film=film, thickness_nm=thickness, deposition_temp_c=temp,
                           rf_power_w=power)
        plan = physics.plan(recipe, random.Random(1))
        assert plan.duration_s < recipe.max_duration_s(), recipe
        assert [p.state for p in plan.phases][:3] == ["SETUP"] * 3
