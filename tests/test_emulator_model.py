"""The emulator's state machine and physics, without a protocol in between."""

from __future__ import annotations

import asyncio

import pytest

from sim_tools.clock import VirtualClock
from sim_tools.faults import FaultKind, FaultSet, FaultSpec
from sim_tools.model import ALARM_DOOR, EmulatedTool, Refused
from sim_tools.physics import PHYSICS
from sim_tools.physics.sputterer import RATE_NM_S_PER_KW

BOND = {"temp_c": 200.0, "force_kn": 20.0, "hold_s": 1800.0}
SPUTTER = {"material": "Cu", "thickness_nm": 500.0, "power_w": 2000.0}
SAW = {"spindle_rpm": 30000.0, "feed_mm_s": 20.0, "cut_count": 40, "cut_length_mm": 200.0}


def make(kind: str, clock: VirtualClock, faults: list[FaultSpec] | None = None, spread: float = 0.01,
         seed: int = 1) -> EmulatedTool:
    return EmulatedTool(f"{kind}1", PHYSICS[kind](spread=spread), clock, FaultSet(faults, seed), seed)


async def finish(tool: EmulatedTool) -> None:
    async with asyncio.timeout(5):
        await tool.wait_until(lambda t: t.job_outcome != "RUNNING")


async def test_bonder_job_reports_temperature_force_and_hold(clock: VirtualClock) -> None:
    tool = make("bonder", clock)
    tool.command("start", {"job_id": 11, **BOND})
    assert tool.state == "SETUP" and tool.job_outcome == "RUNNING"
    await finish(tool)
    assert (tool.state, tool.job_outcome, tool.job_id) == ("IDLE", "COMPLETED", 11)
    assert tool.results["peak_temp_c"] == pytest.approx(200, rel=0.05)
    assert tool.results["peak_force_kn"] == pytest.approx(20, rel=0.05)
    assert tool.results["hold_time_s"] == 1800
    assert float(tool.results["min_pressure_mbar"]) < 0.01


@pytest.mark.parametrize("material", sorted(RATE_NM_S_PER_KW))
async def test_sputter_rate_depends_on_material_and_power(clock: VirtualClock, material: str) -> None:
    tool = make("sputterer", clock, spread=0.0)
    tool.command("start", {"job_id": 5, **SPUTTER, "material": material, "power_w": 1500.0})
    await finish(tool)
    expected_s = 500.0 / (RATE_NM_S_PER_KW[material] * 1.5)
    assert tool.results["deposition_time_s"] == pytest.approx(expected_s, rel=1e-3)
    assert tool.results["film_thickness_nm"] == pytest.approx(500.0)
    assert float(tool.results["base_pressure_reached_torr"]) < 5e-6  # struck only below base


async def test_saw_cut_time_from_cuts_length_and_feed(clock: VirtualClock) -> None:
    tool = make("dicing_saw", clock)
    tool.command("start", {"job_id": 1, **SAW})
    await finish(tool)
    assert tool.results["cut_time_s"] == pytest.approx(40 * (200 / 20 + 2.0), rel=1e-6)
    assert tool.results["cuts_completed"] == 40
    first_wear = float(tool.results["blade_wear_um"])
    tool.command("start", {"job_id": 2, **SAW})
    await finish(tool)
    assert float(tool.results["blade_wear_um"]) > first_wear > 0  # the blade wears over its life


async def test_results_scatter_is_seeded(clock: VirtualClock) -> None:
    runs = []
    for seed in (3, 3, 4):
        tool = make("bonder", clock, seed=seed)
        tool.command("start", {"job_id": 1, **BOND})
        await finish(tool)
        runs.append(tool.results["peak_temp_c"])
    assert runs[0] == runs[1] != runs[2]


async def test_start_refusals(clock: VirtualClock) -> None:
    tool = make("bonder", clock)
    with pytest.raises(Refused, match="recipe temp_c"):
        tool.command("start", {"job_id": 1, **BOND, "temp_c": 400.0})
    with pytest.raises(Refused, match="job_id"):
        tool.command("start", {"job_id": 0, **BOND})
    tool.set_interlock("door_closed", False)
    with pytest.raises(Refused, match="interlock door_closed"):
        tool.command("start", {"job_id": 1, **BOND})
    tool.set_interlock("door_closed", True)
    tool.command("start", {"job_id": 1, **BOND})
    with pytest.raises(Refused, match="busy"):
        tool.command("start", {"job_id": 2, **BOND})
    tool.command("abort", {})
    assert (tool.state, tool.job_outcome) == ("IDLE", "ABORTED")


async def test_door_opening_mid_run_aborts_with_alarm(clock: VirtualClock) -> None:
    tool = make("bonder", clock, [FaultSpec(kind=FaultKind.DOOR_OPEN, at_fraction=0.5)])
    tool.command("start", {"job_id": 9, **BOND})
    await finish(tool)
    assert (tool.job_outcome, tool.alarm_id, tool.interlocks["door_closed"]) == ("ABORTED", ALARM_DOOR, False)
    with pytest.raises(Refused, match="door_closed"):
        tool.command("reset", {})  # the cause persists
    tool.set_interlock("door_closed", True)
    tool.command("reset", {})
    assert tool.alarm_id == 0


async def test_alarm_mid_run_pauses_until_abort(clock: VirtualClock) -> None:
    tool = make("sputterer", clock, [FaultSpec(kind=FaultKind.ALARM, alarm_id=202, at_fraction=0.3)])
    tool.command("start", {"job_id": 4, **SPUTTER})
    async with asyncio.timeout(5):
        await tool.wait_until(lambda t: t.state == "PAUSE")
    assert (tool.alarm_id, tool.job_outcome) == (202, "RUNNING")
    tool.command("abort", {})
    assert (tool.state, tool.job_outcome) == ("IDLE", "ABORTED")
    await tool.close()


async def test_abort_reports_partial_cuts(clock: VirtualClock) -> None:
    slow = VirtualClock(200.0)
    tool = make("dicing_saw", slow)
    tool.command("start", {"job_id": 3, **SAW})
    await asyncio.sleep(0.5)  # 100 tool s: 30 s spin-up, then ~5 cuts of 12 s
    tool.command("abort", {})
    assert tool.job_outcome == "ABORTED"
    assert 3 <= int(tool.results["cuts_completed"]) <= 8


async def test_off_target_fault_skews_results(clock: VirtualClock) -> None:
    tool = make("sputterer", clock, [FaultSpec(kind=FaultKind.OFF_TARGET, magnitude=0.3)], spread=0.0)
    tool.command("start", {"job_id": 4, **SPUTTER})
    await finish(tool)
    assert tool.results["film_thickness_nm"] == pytest.approx(650.0)


async def test_listeners_see_every_transition(clock: VirtualClock) -> None:
    tool = make("dicing_saw", clock)
    seen: list[str] = []
    tool.add_listener(lambda: seen.append(tool.state))
    tool.command("start", {"job_id": 1, **SAW})
    await finish(tool)
    assert seen[0] == "SETUP" and "EXECUTING" in seen and seen[-1] == "IDLE"


async def test_drift_walks_a_sensor_out_of_band() -> None:
    slow = VirtualClock(2000.0)
    tool = make("dicing_saw", slow, [FaultSpec(kind=FaultKind.DRIFT, at_fraction=0.0, magnitude=0.5)])
    tool.command("start", {"job_id": 1, **SAW})  # 30 s spin-up + 480 s cutting; drift ramp 51 s
    try:
        await asyncio.sleep(0.1)  # 200 tool s: cutting, spindle steady at 30000 rpm
        assert tool.state == "EXECUTING"
        assert tool.read(["spindle_speed_rpm"])["spindle_speed_rpm"] == pytest.approx(45000.0)
    finally:
        tool.command("abort", {})
    assert tool.read(["spindle_speed_rpm"])["spindle_speed_rpm"] == 0.0  # idle: the fault is job-bound


async def test_alarm_reports_set_and_clear_in_order(clock: VirtualClock) -> None:
    tool = make("sputterer", clock)
    tool.raise_alarm(202)
    tool.raise_alarm(201)  # a new alarm replaces the old: 202 clears, 201 sets
    tool.command("reset", {})
    assert [(e.alarm_id, e.set) for e in tool.alarm_events] == [(202, True), (202, False), (201, True),
                                                                (201, False)]
    times = [e.tool_time_s for e in tool.alarm_events]
    assert times == sorted(times)


async def test_a_start_against_a_reported_open_interlock_is_a_violation_a_race_is_not(
    clock: VirtualClock,
) -> None:
    """The audit the campaign counts: a start against a door the tool had already reported open is the
    controller's violation; one racing a door that opened after the last report is the tool's catch."""
    tool = make("dicing_saw", clock)
    args = {"job_id": 7, "spindle_rpm": 30000, "feed_mm_s": 20, "cut_count": 4, "cut_length_mm": 100}
    tool.read(["state", "door_closed"])  # the controller's permissive read: all made
    tool.set_interlock("door_closed", False)  # opens after it
    with pytest.raises(Refused):
        tool.command("start", args)
    assert (tool.violations, len(tool.raced)) == ([], 1)
    tool.read(["state", "door_closed"])  # now the controller was shown the open door
    with pytest.raises(Refused):
        tool.command("start", {**args, "job_id": 8})
    assert tool.violations == ["start of job 8 with interlock door_closed not made"]
