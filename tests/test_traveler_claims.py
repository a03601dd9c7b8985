"""The traveler (stack/wafer/layer record, E90 states, permissives) and the claims 1-7 check."""

from __future__ import annotations

from typing import Any

import pytest

from drivers.errors import ConfigError
from sequencer.process.claims import check_claims
from sequencer.process.flow import Step, expand, load_flow
from sequencer.process.traveler import (
    E90State,
    Layer,
    Stack,
    apply_step,
    new_stack,
    set_state,
    wafer_permissive,
)

AT = "2024-05-01T12:00:00+00:00"


def build(flow: str = "flow-a", wafers: int = 2, until: str | None = None,
          results: dict[str, dict[str, Any]] | None = None) -> tuple[Stack, list[Step]]:
    """A stack with the flow applied up to (not including) step `until`; `results` by uid (run mode)."""
    f = load_flow(flow)
    steps = expand(f, wafers)
    stack = new_stack(f, wafers, "S1")
    for step in steps:
        if step.uid == until:
            break
        result = (results or {}).get(step.uid)
        apply_step(stack, step, {"tool": "t1", "job_id": 7, **result} if result else None,
                   tool=f"{step.kind}1", at=AT)
    return stack, steps


def by_uid(steps: list[Step], uid: str) -> Step:
    return next(s for s in steps if s.uid == uid)


def claim(stack: Stack, n: int) -> tuple[bool, str]:
    c = check_claims(stack)[n - 1]
    assert c.claim == n
    return c.ok, c.detail


def test_new_stack_from_the_flow_substrate() -> None:
    stack = new_stack(load_flow("flow-b"), 3, "S9")
    assert [w.index for w in stack.wafers] == [1, 2, 3] and stack.flow == "flow-b"
    assert {(w.thickness_um, w.diameter_mm, w.state, w.in_stack) for w in stack.wafers} == {
        (725, 300, E90State.NEEDS_PROCESSING, False)}
    with pytest.raises(ConfigError, match="range 2-8"):
        new_stack(load_flow("flow-b"), 9, "S9")


def test_measured_values_go_on_the_traveler() -> None:
    stack, _ = build(results={"A2a": {"film_thickness_nm": 98.0}, "A5.w1": {"film_thickness_um": 27.5},
                              "A7.w2": {"etched_depth_um": 299.2}, "A12a.w2": {"plated_thickness_um": 9.7}})
    w1, w2 = stack.wafer(1), stack.wafer(2)
    insulating = w1.present("front", "insulating")[0]
    assert (insulating.thickness_um, insulating.measured, insulating.step) == (27.5, True, "A5.w1")
    assert insulating.tool == "coater1" and insulating.at == AT and insulating.kind == "coater"
    seed = next(la for la in w1.front if la.step == "A2a")
    assert seed.thickness_um == pytest.approx(0.098) and seed.removed_by == "A2c"  # kept in the record
    assert w2.holes[0].depth_um == 299.2 and w2.holes[0].filled_by == "A12a.w2"
    assert {la.role: la.thickness_um for la in w2.front if la.step == "A12a.w2"} == {
        "via_electrode": 299.2, "rewiring": 9.7}
    assert stack.bonds[0].through == "epoxy" and stack.bonds[0].through_um == 27.5
    entry = next(h for h in stack.history if h.step == "A5.w1")
    assert entry.result is not None and entry.result["film_thickness_um"] == 27.5
    assert next(h for h in stack.history if h.step == "A1").result is None


def test_nominal_values_in_check_mode() -> None:
    stack, _ = build(until="A6.w2")
    insulating = stack.wafer(1).present("front", "insulating")[0]
    assert (insulating.thickness_um, insulating.measured) == (25.0, False)
    rewiring = stack.wafer(1).present("front", "rewiring")[0]
    assert rewiring.material == "Cu" and rewiring.thickness_um == 5.0
    assert [la.role for la in stack.wafer(1).present("front")] == [
        "pad", "passivation", "rewiring", "insulating"]


def test_e90_states_follow_the_steps() -> None:
    stack, steps = build(until="A6.w2")
    assert [w.state for w in stack.wafers] == [E90State.IN_PROCESS, E90State.NEEDS_PROCESSING]
    apply_step(stack, by_uid(steps, "A6.w2"), None, tool="bonder1", at=AT)
    assert [w.state for w in stack.wafers] == [E90State.IN_PROCESS] * 2
    done, _ = build()
    assert [w.state for w in done.wafers] == [E90State.PROCESSED] * 2 and done.diced


def test_run_control_states_are_kept() -> None:
    stack, steps = build(until="A7.w2")
    set_state(stack, 2, E90State.UNKNOWN)
    assert wafer_permissive(stack, by_uid(steps, "A7.w2")) == "wafer 2 is UNKNOWN"
    apply_step(stack, by_uid(steps, "A7.w2"), None, tool="etcher1", at=AT)  # operator confirmed it ran
    assert stack.wafer(2).state is E90State.UNKNOWN  # apply_step never overwrites run control's state
    set_state(stack, None, E90State.ABORTED)
    assert {w.state for w in stack.wafers} == {E90State.ABORTED}
    assert "ABORTED" in str(wafer_permissive(stack, by_uid(steps, "A8a.w2")))


def test_permissives() -> None:
    stack, steps = build(until="A5.w1")
    assert wafer_permissive(stack, by_uid(steps, "A5.w1")) is None
    bond = str(wafer_permissive(stack, by_uid(steps, "A6.w2")))
    assert "no insulating layer on the front of wafer 1" in bond
    holes = wafer_permissive(stack, by_uid(steps, "A7.w2"))
    assert holes == "wafer 2 is not loaded or bonded into the stack yet"
    assert "already loaded" in str(wafer_permissive(stack, by_uid(steps, "A1")))
    fresh, _ = build(until="A2a")
    assert wafer_permissive(fresh, by_uid(steps, "A2b")) == "no seed layer on the front of wafer 1"
    diced, _ = build()
    assert "diced by A16" in str(wafer_permissive(diced, by_uid(steps, "A15")))


def test_permissive_for_a_wafer_thinned_before_its_bond() -> None:
    stack, steps = build("flow-b", 2, until="B1a.w2")
    assert wafer_permissive(stack, by_uid(steps, "B1a.w2")) is None  # wafer 2 is not in the stack yet
    assert stack.wafer(2).in_stack is False
    apply_step(stack, by_uid(steps, "B1a.w2"), {"final_thickness_um": 108.0}, tool="grinder1", at=AT)
    assert stack.wafer(2).thickness_um == 108.0


def test_a_step_is_applied_once() -> None:
    stack, steps = build(until="A2a")
    with pytest.raises(ValueError, match="already on traveler"):
        apply_step(stack, by_uid(steps, "A1"), None, tool="-", at=AT)
    assert stack.completed() == {"A1"}


def test_json_export_round_trip() -> None:
    stack, _ = build("flow-b", 2)
    text = stack.model_dump_json()
    assert '"state":"PROCESSED"' in text and '"role":"heat_radiation"' in text
    assert Stack.model_validate_json(text) == stack


def test_claims_hold_on_finished_stacks() -> None:
    for flow in ("flow-a", "flow-b"):
        stack, _ = build(flow, 4)
        assert all(c.ok for c in check_claims(stack)), check_claims(stack)
    a, _ = build("flow-a", 3)
    assert claim(a, 6) == (True, "wafer 2: A12a.w2, wafer 3: A12a.w3")
    assert claim(a, 3) == (True, "no heat_radiation layer (optional)")
    b, _ = build("flow-b", 2)
    assert claim(b, 3) == (True, "Al 0.3 um on wafer 1 back (B13)")
    assert "not applicable" in claim(b, 6)[1]


def test_claims_judge_measured_values() -> None:
    stack, _ = build(results={"A5.w1": {"film_thickness_um": 80.0}, "A14b": {"film_thickness_um": 45.0}})
    assert claim(stack, 4) == (False, "epoxy insulating 80 um on the front of wafer 1: outside 10-75 um")
    assert claim(stack, 5)[0] is False and "outside 50-90 um" in claim(stack, 5)[1]


def test_claims_fail_on_a_partial_stack() -> None:
    stack, _ = build(wafers=3, until="A6.w3")
    assert claim(stack, 1)[0] is False and "wafer 3 is not in the stack" in claim(stack, 1)[1]
    assert claim(stack, 7) == (False, "the stack is not diced")


def test_claims_fail_on_a_tampered_record() -> None:
    stack, _ = build(wafers=2)
    stack.bonds[0].upper_face = "front"
    assert claim(stack, 2) == (False, "bond A6.w2: lower front to upper front")
    stack.wafer(2).back.append(Layer(material="Ti", role="heat_radiation", thickness_um=0.2, step="X1",
                                     tool="cvd1", kind="cvd", at=AT, seq=99))
    ok, detail = claim(stack, 3)
    assert not ok
    for text in ("LOWERMOST", "Cu, Al or an alloy", "thin film", "after dicing"):
        assert text in detail
    via = next(la for la in stack.wafer(2).front if la.role == "via_electrode")
    via.material = "Al"
    assert claim(stack, 6) == (False, "wafer 2: via_electrode of Al (A12a.w2)")
    stack.bonds[0].seq = 1000
    assert claim(stack, 7)[0] is False and "bond A6.w2 after dicing" in claim(stack, 7)[1]
