"""Bypasses: a role, a reason and an expiry, journaled; never for safety interlocks."""

from __future__ import annotations

import asyncio
import getpass
import subprocess
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from drivers.kinds.ball_mounter import BallMounterRecipe
from drivers.line import LineConfig, apply_endpoints, load_line
from drivers.tool import ProcessState, ToolStatus
from sequencer.run.control import RunState
from sequencer.run.interlocks import (
    Bypass,
    BypassRefused,
    StepContext,
    check_bypassable,
    evaluate_permissives,
    safety_names,
)
from sequencer.run.journal import read_events
from sequencer.run.remote import send_command
from sequencer.run.run import start_run
from sequencer.run.rundir import JOURNAL
from sim_tools.faults import FaultKind, FaultSpec
from sim_tools.line import EmulatedLine
from tests.fixtures.sequencer import WAFERLINE
from tests.test_sequencer_e2e import _wait_for_state


@pytest.fixture(scope="module")
async def line() -> AsyncIterator[tuple[LineConfig, EmulatedLine]]:
    """Slower than the shared fast line: a bond then lasts ~130 ms of wall time, so the run interlock's
    polls see the drifting thermocouple even on a loaded CI machine (at 200000 it lasted ~13 ms)."""
    config = load_line("emulated").model_copy(update={"time_scale": 20000.0})
    async with EmulatedLine(config) as emulated:
        assert emulated.endpoints is not None
        yield apply_endpoints(config, emulated.endpoints), emulated


async def test_band_trip_holds_and_a_bypass_lets_the_run_through(
    line: tuple[LineConfig, EmulatedLine], runs: Path
) -> None:
    config, emulated = line
    bonder = emulated.tools["bonder1"]
    bonder.faults.set(FaultSpec(kind=FaultKind.DRIFT, at_fraction=0.0, magnitude=0.5))  # chuck reads 1.5x
    try:
        held_run = asyncio.create_task(start_run("flow-a", config, wafers=2))
        run_dir = await _wait_for_state(runs, "HELD")
        reply = await send_command(run_dir, "status", "test")
        assert reply["held_reason"].startswith("interlock:chuck_temp_band")
        await send_command(run_dir, "abort", "test", "wafer scrapped after over-temperature")
        assert (await held_run).state is RunState.ABORTED

        task = asyncio.create_task(start_run("flow-a", config, wafers=2))
        run_dir = await _wait_for_state(runs, "EXECUTE")
        why = "thermocouple TC2 reads high, TC1 confirms 180 C"
        granted = await send_command(run_dir, "bypass", "eve", why, bypass={
            "interlock": "chuck_temp_band", "role": "engineer", "minutes": 30})
        assert granted["ok"], granted
        outcome = await asyncio.wait_for(task, 30)
    finally:
        bonder.faults.clear()
    assert outcome.state is RunState.COMPLETE and outcome.claims_ok
    evs = read_events(outcome.directory / JOURNAL)
    grant = next(e for e in evs if e.kind == "bypass")
    assert (grant.data["interlock"], grant.data["role"], grant.data["who"]) == (
        "chuck_temp_band", "supervisor", f"{getpass.getuser()} (eve)")  # the caller's real role and user
    assert not any(e.kind == "interlock_tripped" for e in evs)


async def test_bypass_refusals_over_the_socket(line: tuple[LineConfig, EmulatedLine], runs: Path) -> None:
    config, _ = line
    task = asyncio.create_task(start_run("flow-b", config, wafers=2))
    run_dir = await _wait_for_state(runs, "EXECUTE")
    try:
        cases = {
            ("emo_clear", "supervisor", "EMO loop under maintenance"): "never be bypassed",
            ("door_closed_mid_run", "engineer", "door switch broken, taped"): "never be bypassed",
            ("door_closed", "supervisor", "door switch broken, taped"): "door_closed guards a safety input",
            ("safety_alarm", "engineer", "alarm 10 is a false alarm"): "never be bypassed",
            ("coffee_level", "engineer", "the machine is empty again"): "unknown interlock",
            ("n2_supply_on", "intern", "interns may not bypass anything"): "role",
            ("n2_supply_on", "engineer", "short"): "reason",
        }
        for (interlock, role, why), expected in cases.items():
            reply = await send_command(run_dir, "bypass", "mallory", why,
                                       bypass={"interlock": interlock, "role": role, "minutes": 5})
            assert not reply["ok"] and expected in reply["error"], (interlock, reply)
        cli = await asyncio.create_subprocess_exec(  # the run's socket is served by this event loop
            *WAFERLINE, "bypass", run_dir.name, "door_closed", "--role", "supervisor",
            "--reason", "door switch broken, taped over", "--who", "mallory", stderr=subprocess.PIPE)
        _, err = await asyncio.wait_for(cli.communicate(), 60)
        said = " ".join(err.decode().split())
        assert cli.returncode == 1 and "door_closed guards a safety input" in said, said
        assert "whatever the role" in said
        assert not any(e.kind == "bypass" for e in read_events(run_dir / JOURNAL))
    finally:
        await send_command(run_dir, "abort", "test", "done testing")
        await asyncio.wait_for(task, 30)


def test_expired_bypass_no_longer_applies() -> None:
    status = ToolStatus(tool="mounter1", kind="ball_mounter", state=ProcessState.IDLE,
                        interlocks={"door_closed": True, "emo_ok": True, "n2_ok": False, "exhaust_ok": True})

    class Step:
        uid = "A15.w2"
        recipe = BallMounterRecipe(operation="mount_reflow", alloy="Pb63Sn37", ball_count=100,
                                   peak_temp_c=213)

    ctx = StepContext(Step(), "mounter1", status, None)
    now = datetime.now(UTC)
    fresh = Bypass(interlock="n2_supply_on", role="engineer", reason="N2 sensor being replaced",
                   who="eve", expires_at=now + timedelta(minutes=5))
    stale = fresh.model_copy(update={"expires_at": now - timedelta(seconds=1)})
    refusals = [r for r in evaluate_permissives(ctx, [fresh], now) if r.interlock == "n2_supply_on"]
    assert refusals[0].bypassed_by == fresh
    refusals = [r for r in evaluate_permissives(ctx, [stale], now) if r.interlock == "n2_supply_on"]
    assert refusals[0].bypassed_by is None
    with pytest.raises(BypassRefused, match="safety"):
        check_bypassable("emo_clear")


def test_profile_marked_safety_input_is_refused_and_never_bypassed() -> None:
    """An input a profile marks as safety (here the mounter's N2 supply) refuses like a door."""
    status = ToolStatus(tool="mounter1", kind="ball_mounter", state=ProcessState.IDLE,
                        interlocks={"door_closed": True, "emo_ok": True, "n2_ok": False, "exhaust_ok": True},
                        safety_inputs=("door_closed", "emo_ok", "n2_ok"))

    class Step:
        uid = "A15.w2"
        recipe = None

    bypass = Bypass(interlock="n2_supply_on", role="supervisor", reason="N2 sensor being replaced",
                    who="eve", expires_at=datetime.now(UTC) + timedelta(minutes=5))
    refusal = next(r for r in evaluate_permissives(StepContext(Step(), "mounter1", status, None), [bypass])
                   if r.interlock == "n2_supply_on")
    assert refusal.safety and refusal.bypassed_by is None and "safety input n2_ok" in refusal.reason
    with pytest.raises(BypassRefused, match="never be bypassed"):
        check_bypassable("n2_supply_on", safety_names(["door_closed", "emo_ok", "n2_ok"]))
    check_bypassable("n2_supply_on", safety_names(["door_closed", "emo_ok"]))  # unmarked: bypassable
