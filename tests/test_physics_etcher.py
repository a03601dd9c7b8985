"""Etcher emulator at model level: rates, endpoint on the OES step, timed-etch scatter, abort, deadlines."""

from __future__ import annotations

import asyncio
import itertools
import random
import statistics

import pytest

from drivers.kinds.etcher import MAX_DEPTH_UM, EtcherRecipe
from drivers.profiles.base import Value
from sim_tools.clock import VirtualClock
from sim_tools.faults import FaultSet
from sim_tools.model import EmulatedTool, Refused
from sim_tools.physics.etcher import EtcherPhysics

# A7: through-holes in a 300 um wafer, stopping on the epoxy/polyimide bonding layer
SI: dict[str, Value] = {"process": "si_bosch", "target_depth_um": 300.0, "stop_layer": "polymer",
                        "endpoint_detect": True, "overetch_pct": 10.0, "rf_power_w": 2000.0}
TIMED: dict[str, Value] = {**SI, "stop_layer": "none", "endpoint_detect": False, "overetch_pct": 0.0}


def make(clock: VirtualClock, spread: float = 0.0, seed: int = 1) -> EmulatedTool:
    return EmulatedTool("etcher1", EtcherPhysics(spread=spread), clock, FaultSet(seed=seed), seed)


async def run(tool: EmulatedTool, recipe: dict[str, Value], job_id: int = 1) -> dict[str, Value]:
    tool.command("start", {"job_id": job_id, **recipe})
    async with asyncio.timeout(5):
        await tool.wait_until(lambda t: t.job_outcome != "RUNNING")
    assert tool.job_outcome == "COMPLETED"
    return dict(tool.results)


@pytest.mark.parametrize(
    ("power_w", "expected_s"),
    [(2000.0, 300 / 10 * 60),  # 10 um/min at the 2 kW reference: 1800 s
     (500.0, 300 / 5 * 60)],  # a quarter of the power, sqrt -> half the rate: 3600 s
)
async def test_si_300_um_timed(clock: VirtualClock, power_w: float, expected_s: float) -> None:
    res = await run(make(clock), {**TIMED, "rf_power_w": power_w})
    assert res["etch_time_s"] == pytest.approx(expected_s)
    assert res["etched_depth_um"] == pytest.approx(300.0)
    assert (res["endpoint_detected"], res["endpoint_time_s"]) == (False, 0.0)


async def test_endpoint_stops_at_the_stop_layer_and_overetches(clock: VirtualClock) -> None:
    res = await run(make(clock), SI)
    assert res["endpoint_detected"] is True
    assert res["endpoint_time_s"] == pytest.approx(1800.0)
    assert res["etch_time_s"] == pytest.approx(1980.0)  # +10 % overetch
    # overetch removes stop layer at 1/50 of the rate: 300 + 180 s x 10 um/min / 50 = 300.6 um
    assert res["etched_depth_um"] == pytest.approx(300.6)


async def test_endpoint_depth_is_steady_while_time_follows_the_rate(clock: VirtualClock) -> None:
    runs = [await run(make(clock, spread=0.05, seed=s), SI) for s in range(1, 7)]
    assert all(r["endpoint_detected"] is True for r in runs)
    assert all(r["etched_depth_um"] == pytest.approx(300.6, rel=1e-3) for r in runs)
    times = [float(r["endpoint_time_s"]) for r in runs]
    assert len(set(times)) == len(times) and statistics.stdev(times) > 10
    assert all(float(r["etch_time_s"]) == pytest.approx(1.1 * float(r["endpoint_time_s"]), rel=1e-3)
               for r in runs)


async def test_timed_etch_shows_the_rate_scatter(clock: VirtualClock) -> None:
    runs = [await run(make(clock, spread=0.05, seed=s), TIMED) for s in range(1, 9)]
    assert {r["etch_time_s"] for r in runs} == {1800.0}  # time is the recipe's
    depths = [float(r["etched_depth_um"]) for r in runs]
    assert len(set(depths)) == len(depths)
    assert 3 < statistics.stdev(depths) < 40  # 5 % of 300 um is 15 um
    assert statistics.mean(depths) == pytest.approx(300, rel=0.08)
    assert not any(r["endpoint_detected"] for r in runs)


async def test_endpoint_without_a_stop_layer_runs_timed(clock: VirtualClock) -> None:
    res = await run(make(clock), {**SI, "stop_layer": "none"})
    assert (res["endpoint_detected"], res["etch_time_s"]) == (False, pytest.approx(1980.0))
    assert res["etched_depth_um"] == pytest.approx(330.0)  # nothing slows it


async def test_timed_etch_slows_in_the_stop_layer(clock: VirtualClock) -> None:
    # A2 pad etch: 1 um Al at 0.5 um/min, timed 120 s + 20 %, the last 24 s in oxide at 1/50 the rate
    res = await run(make(clock), {"process": "al_pattern", "target_depth_um": 1.0, "stop_layer": "oxide",
                                  "endpoint_detect": False, "overetch_pct": 20.0, "rf_power_w": 500.0})
    assert res["etch_time_s"] == pytest.approx(144.0)
    assert res["etched_depth_um"] == pytest.approx(1.004)
    assert res["endpoint_detected"] is False


async def test_oes_steps_down_when_the_stop_layer_is_reached(clock: VirtualClock) -> None:
    tool = make(clock)
    seen: list[tuple[str, float, float]] = []

    def sample() -> None:
        v = tool.read(["oes_intensity", "etched_um", "rf_power_fwd_w"])
        seen.append((tool.state, float(v["oes_intensity"]), float(v["etched_um"])))
        assert float(v["rf_power_fwd_w"]) in (0.0, 2000.0)

    tool.add_listener(sample)
    await run(tool, SI)
    oes = [o for _, o, _ in seen]
    assert oes[:4] == [0.0, 1.0, 0.2, 0.0]  # stabilise, main etch, overetch, pump-out
    etch_start, over_start = seen[1][2], seen[2][2]
    assert etch_start == pytest.approx(0.0, abs=1.0)
    assert over_start == pytest.approx(300.0, abs=1.0)  # the step comes at the stop layer


async def test_abort_reports_partial_depth() -> None:
    slow = VirtualClock(2000.0)
    tool = make(slow)
    tool.command("start", {"job_id": 3, **SI})
    await asyncio.sleep(0.5)  # ~1000 tool s: 30 s stabilise, then ~970 s at 10 um/min
    tool.command("abort", {})
    assert tool.job_outcome == "ABORTED"
    depth, t = float(tool.results["etched_depth_um"]), float(tool.results["etch_time_s"])
    assert 100 < depth < 250
    assert depth == pytest.approx(t * 10 / 60, rel=1e-3)
    assert tool.results["endpoint_detected"] is False


@pytest.mark.parametrize(
    ("field", "bad"),
    [("process", "laser"), ("stop_layer", "copper"), ("overetch_pct", 60.0), ("rf_power_w", 5000.0),
     ("target_depth_um", 900.0), ("target_depth_um", 0.0)],
)
async def test_recipe_range_refusals(clock: VirtualClock, field: str, bad: Value) -> None:
    with pytest.raises(Refused, match=f"recipe {field}"):
        make(clock).command("start", {"job_id": 1, **SI, field: bad})


async def test_depth_limit_per_process(clock: VirtualClock) -> None:
    tool = make(clock)
    with pytest.raises(Refused, match=r"recipe target_depth_um: .*seed_removal removes at most 2 um"):
        tool.command("start", {"job_id": 1, **SI, "process": "seed_removal", "target_depth_um": 5.0})
    res = await run(tool, {**SI, "process": "seed_removal", "target_depth_um": 0.3, "stop_layer": "polymer",
                           "rf_power_w": 500.0})
    assert res["endpoint_time_s"] == pytest.approx(180.0)  # 0.3 um at 0.1 um/min


def test_every_valid_recipe_finishes_within_its_deadline() -> None:
    physics = EtcherPhysics(spread=0.1)
    rng = random.Random(7)
    for process, power, stop, ep, oe, seed in itertools.product(
        MAX_DEPTH_UM, (50.0, 3000.0), ("none", "polymer"), (False, True), (0.0, 50.0), range(5)
    ):
        for depth in (0.01, MAX_DEPTH_UM[process]):
            recipe = EtcherRecipe(process=process, target_depth_um=depth, stop_layer=stop,
                                  endpoint_detect=ep, overetch_pct=oe, rf_power_w=power)
            rng.seed(seed)
            assert physics.plan(recipe, rng).duration_s < recipe.max_duration_s()
