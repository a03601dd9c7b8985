"""Bonder modes: wafer bond, epoxy film lamination (Flow B11) and flip-chip / die attach (Flow D)."""

from __future__ import annotations

import asyncio
import random

import pytest
from pydantic import ValidationError

from drivers.kinds.bonder import Bonder, BonderRecipe
from drivers.profiles.base import Value
from sim_tools.clock import VirtualClock
from sim_tools.faults import FaultSet
from sim_tools.model import EmulatedTool, Refused
from sim_tools.physics.bonder import BonderPhysics

LAMINATE: dict[str, Value] = {"mode": "lamination", "temp_c": 120.0, "force_kn": 5.0, "hold_s": 120.0}
ATTACH: dict[str, Value] = {"mode": "die_attach", "temp_c": 220.0, "force_kn": 2.0, "hold_s": 30.0}


@pytest.mark.parametrize(
    ("good", "field", "bad", "message"),
    [
        (LAMINATE, "temp_c", 200.0, "lamination needs temp_c 80-180 C, got 200 C"),
        (LAMINATE, "force_kn", 20.0, "lamination needs force_kn 1-10 kN, got 20 kN"),
        (ATTACH, "force_kn", 30.0, "die_attach needs force_kn 1-20 kN, got 30 kN"),
        ({"temp_c": 200.0, "force_kn": 20.0, "hold_s": 1800.0}, "temp_c", 120.0,
         "wafer_bond needs temp_c 150-250 C, got 120 C"),
        ({"temp_c": 200.0, "force_kn": 20.0, "hold_s": 1800.0}, "hold_s", 30.0,
         "wafer_bond needs hold_s 60-7200 s, got 30 s"),
    ],
)
def test_mode_windows(good: dict[str, Value], field: str, bad: Value, message: str) -> None:
    BonderRecipe.model_validate(good)
    with pytest.raises(ValidationError, match=message):
        BonderRecipe.model_validate(good | {field: bad})


def test_default_mode_is_wafer_bond_and_field_bounds_span_all_modes() -> None:
    assert BonderRecipe(temp_c=200, force_kn=20, hold_s=1800).mode == "wafer_bond"
    with pytest.raises(ValidationError) as exc:
        BonderRecipe.model_validate(LAMINATE | {"temp_c": 70.0})
    assert exc.value.errors()[0]["loc"] == ("temp_c",)  # below every mode: the field bound refuses


def test_phases_per_mode() -> None:
    physics = BonderPhysics(spread=0.0)
    rng = random.Random(1)
    wafer = physics.plan(BonderRecipe(temp_c=200, force_kn=20, hold_s=1800), rng)
    laminate = physics.plan(BonderRecipe.model_validate(LAMINATE), rng)
    attach = physics.plan(BonderRecipe.model_validate(ATTACH), rng)
    # wafer bond: 120 s pump-down, (200-25)/20 C/min = 525 s ramp, 1800 s bond, 300 s cool
    assert [(p.name, p.duration_s) for p in wafer.phases] == [
        ("pump-down", 120.0), ("ramp", 525.0), ("bond", 1800.0), ("cool", 300.0)]
    # lamination: the laminator's small chamber pumps in 30 s; (120-25)/20 C/min = 285 s ramp
    assert [(p.name, p.duration_s) for p in laminate.phases] == [
        ("pump-down", 30.0), ("ramp", 285.0), ("bond", 120.0), ("cool", 300.0)]
    # die attach at atmosphere: no pump-down at all, (220-25)/20 C/min = 585 s ramp
    assert [(p.name, p.duration_s) for p in attach.phases] == [
        ("ramp", 585.0), ("bond", 30.0), ("cool", 300.0)]
    assert attach.phases[0].state == "SETUP"
    for plan, src in ((wafer, {"temp_c": 200, "force_kn": 20, "hold_s": 1800}), (laminate, LAMINATE),
                      (attach, ATTACH)):
        assert plan.duration_s < BonderRecipe.model_validate(src).max_duration_s()


async def test_modes_run_on_the_emulator(clock: VirtualClock) -> None:
    tool = EmulatedTool("bonder1", BonderPhysics(spread=0.0), clock, FaultSet(seed=1), 1)
    tool.command("start", {"job_id": 1, **ATTACH})
    async with asyncio.timeout(5):
        await tool.wait_until(lambda t: t.job_outcome != "RUNNING")
    assert tool.results["min_pressure_mbar"] == 1013.0 and tool.results["peak_temp_c"] == 220.0
    tool.command("start", {"job_id": 2, **LAMINATE})
    async with asyncio.timeout(5):
        await tool.wait_until(lambda t: t.job_outcome != "RUNNING")
    assert float(tool.results["min_pressure_mbar"]) < 0.01 and tool.results["peak_force_kn"] == 5.0
    with pytest.raises(Refused, match="lamination needs temp_c 80-180 C"):
        tool.command("start", {"job_id": 3, **LAMINATE, "temp_c": 220.0})


async def test_mode_travels_over_modbus(bonder: Bonder, bonder_emulator: EmulatedTool) -> None:
    result = await bonder.run(BonderRecipe.model_validate(LAMINATE), job_id=31)
    assert bonder_emulator.setpoints["mode"] == "lamination"
    assert result.hold_time_s == 120 and result.peak_temp_c == pytest.approx(120, rel=0.05)
    await bonder.run(BonderRecipe(temp_c=200, force_kn=20, hold_s=600), job_id=32)
    assert bonder_emulator.setpoints["mode"] == "wafer_bond"
