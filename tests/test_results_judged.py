"""Results are judged, not just recorded (issue 10.7): each kind declares run-interlock bands and
result checks against the step's recipe target, as data in drivers/kinds/<kind>.py.

An off-target fault on a tool makes its first job's results miss the recipe's target by 30 %: the run
must hold naming the value measured and the band allowed, and the wafer must not stay good.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from drivers.kinds import KINDS
from drivers.line import LineConfig
from sequencer.process.flow import expand, load_flow
from sequencer.process.traveler import E90State
from sequencer.run.control import RunState
from sequencer.run.journal import read_events
from sequencer.run.remote import send_command
from sequencer.run.run import start_run
from sequencer.run.rundir import JOURNAL
from sim_tools.faults import FaultKind, FaultSpec
from sim_tools.line import EmulatedLine
from sim_tools.physics import PHYSICS
from tests.test_sequencer_e2e import _wait_for_state

FLOWS = ("flow-a", "flow-b", "flow-c", "flow-d", "flow-e")


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_declares_bands_and_result_checks_on_real_fields(kind: str) -> None:
    tool = KINDS[kind]
    recipe_names = set(tool.recipe_model.model_fields) | {
        n for n in dir(tool.recipe_model) if callable(getattr(tool.recipe_model, n, None))}
    assert tool.run_bands and tool.result_checks
    for band in tool.run_bands:
        assert band.variable in tool.process_values, band
        for limit in (band.high, band.low):
            assert limit is None or limit.of is None or limit.of in recipe_names, band
    for check in tool.result_checks:
        assert check.result in tool.result_variables(), check
        assert check.target is None or check.target.of in recipe_names, check
        assert all(f in tool.recipe_model.model_fields for f in check.when), check


@pytest.mark.parametrize("flow", FLOWS)
def test_nominal_jobs_of_every_flow_pass_their_checks_and_bands(flow: str) -> None:
    """No false hold: every step's physics, over 20 seeds, stays inside its kind's checks and bands."""
    fl = load_flow(flow)
    for step in expand(fl, fl.wafers.default):
        if step.recipe is None:
            continue
        tool, physics = KINDS[step.kind or ""], PHYSICS[step.kind or ""]()
        for seed in range(20):
            plan = physics.plan(step.recipe, random.Random(seed))
            assert [c.check(step.recipe, plan.results) for c in tool.result_checks] == [None] * len(
                tool.result_checks), (step.uid, seed)
            for phase in plan.phases:
                for f in (0.0, 0.5, 1.0):
                    values = {**physics.idle_values(), **phase.values(f)}
                    trips = [b.check(step.recipe, values) for b in tool.run_bands]
                    assert trips == [None] * len(trips), (step.uid, phase.name)


@pytest.mark.parametrize(("flow", "tool", "check"), [
    ("flow-a", "sputter1", "film_thickness"),      # MQTT
    ("flow-a", "plater1", "plated_thickness"),     # Modbus RTU
    ("flow-a", "etcher1", "etched_depth"),         # MQTT
    ("flow-a", "bonder1", "bond_peak_temp"),       # Modbus TCP
    ("flow-a", "mounter1", "reflow_peak"),         # serial
    ("flow-b", "grinder1", "final_thickness"),     # Modbus TCP
    ("flow-b", "coater1", "layer_thickness"),      # serial
    ("flow-b", "cvd1", "film_thickness"),          # MQTT
])
async def test_off_target_result_fails_the_step_and_holds_naming_value_and_band(
    healthy: tuple[LineConfig, EmulatedLine], runs: Path, flow: str, tool: str, check: str
) -> None:
    config, emulated = healthy
    emulated.tools[tool].faults.set(FaultSpec(kind=FaultKind.OFF_TARGET, magnitude=0.3))
    task = asyncio.create_task(start_run(flow, config, wafers=2))
    run_dir = await _wait_for_state(runs, "HELD")
    held = (await send_command(run_dir, "status", "test"))["held_reason"]
    assert held.startswith(f"interlock:result:{check}:") and "measured" in held and "allowed" in held, held
    await send_command(run_dir, "abort", "test", "off-target wafer taken out")
    outcome = await asyncio.wait_for(task, 30)
    assert outcome.state is RunState.ABORTED
    rejected = [e.data for e in read_events(outcome.directory / JOURNAL) if e.kind == "result_rejected"]
    assert [(r["tool"], r["check"]) for r in rejected] == [(tool, check)]
    assert E90State.ABORTED in [w.state for w in outcome.stack.wafers]
