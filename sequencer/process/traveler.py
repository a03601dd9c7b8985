"""The traveler: a durable record of one wafer stack - every layer on every face, holes, bonds, E90 states.

Only completed steps write it (`apply_step`); interlocks and the claims check read it. Removed layers
(stripped resist, etched seed) stay in the record with the step that removed them, so the traveler is
also the stack's history. E90 substrate states: a wafer is IN_PROCESS from its first completed step and
PROCESSED after the last step of the flow that touches it; ABORTED, STOPPED and UNKNOWN are set by run
control (`set_state`) and never overwritten by `apply_step` - an operator decides what happens next.
The records live in stack_model.py and the permissives in permissives.py; both are re-exported here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from drivers.errors import ConfigError
from sequencer.process.effect_apply import HANDLERS, ORDER, Done
from sequencer.process.flow import Flow, Step
from sequencer.process.identity import ByIdentity
from sequencer.process.permissives import permissive_checks, wafer_permissive
from sequencer.process.stack_model import (
    BLOCKED,
    Bond,
    E90State,
    HistoryEntry,
    Holes,
    Layer,
    Record,
    Stack,
    Trace,
    Wafer,
)

__all__ = [
    "BLOCKED", "Bond", "E90State", "HistoryEntry", "Holes", "Layer", "Record", "Stack", "Trace", "Wafer",
    "apply_step", "new_stack", "permissive_checks", "set_state", "wafer_permissive",
]


def new_stack(flow: Flow, wafers: int, stack_id: str) -> Stack:
    lo, hi = flow.wafers.min, flow.wafers.max
    if not lo <= wafers <= hi:
        raise ConfigError(f"flow {flow.name}: {wafers} wafers is outside the flow's range {lo}-{hi}")
    materials = {name: spec.model_dump() for name, spec in flow.materials.items()}
    if flow.members is not None and flow.strip is not None:
        length, width = round(flow.strip.length_mm), flow.strip.width_mm
        parts = [Wafer(index=i, name=m.name, form=m.form, carrier_type=m.carrier, material=m.material,
                       thickness_um=m.thickness_um, diameter_mm=length, width_mm=width)
                 for i, m in enumerate(flow.members, start=1)]
        return Stack(stack_id=stack_id, flow=flow.name, structure=flow.structure, materials=materials,
                     wafers=parts)
    sub = flow.substrate
    assert sub is not None  # Flow._parts: a wafer flow has a substrate
    return Stack(stack_id=stack_id, flow=flow.name, structure=flow.structure, materials=materials, wafers=[
        Wafer(index=i, material=sub.material, thickness_um=sub.thickness_um, diameter_mm=sub.diameter_mm)
        for i in range(1, wafers + 1)
    ])


def set_state(stack: Stack, wafer: int | None, state: E90State) -> None:
    """Run control's hook: set one wafer's (or, with None, every wafer's) E90 state."""
    for w in stack.wafers if wafer is None else [stack.wafer(wafer)]:
        w.state = state


# step uids on each live traveler, kept beside it: the duplicate check then touches one set instead of
# every history entry - on a VM each object first touched after an idle wait costs a cache miss
_APPLIED: ByIdentity[set[str]] = ByIdentity()


def _applied(stack: Stack) -> set[str]:
    uids = _APPLIED.get(stack)
    if uids is not None and len(uids) == len(stack.history):
        return uids
    return _APPLIED.put(stack, {h.step for h in stack.history})  # new, loaded, or written directly


def apply_step(stack: Stack, step: Step, result: Mapping[str, Any] | None, *, tool: str, at: str) -> None:
    """Record a COMPLETED step: its effect with the tool's measured values (or nominal ones when result
    is None, in check mode), a history entry, and the touched wafers' E90 states."""
    applied = _applied(stack)
    if step.uid in applied:
        raise ValueError(f"step {step.uid} is already on traveler {stack.stack_id}")
    seq = len(stack.history)
    done = Done(stack, step, stack.wafer(step.wafer), result, tool, at, seq)
    effect = step.effect
    for action in ORDER:  # one handler per effect (effect_apply.py), in a fixed order
        part = effect.part(action)
        if part is not None:
            HANDLERS[action](done, part)
    stack.history.append(HistoryEntry(
        seq=seq, step=step.uid, spec_id=step.spec_id, kind=step.kind, tool=tool, at=at,
        wafers=list(step.touches), result=dict(result) if result is not None else None))
    applied.add(step.uid)
    for index in step.touches:
        touched = stack.wafer(index)
        if touched.state in (E90State.NEEDS_PROCESSING, E90State.IN_PROCESS):
            finished = index in step.final_for
            touched.state = E90State.PROCESSED if finished else E90State.IN_PROCESS
