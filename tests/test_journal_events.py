"""Typed journal events (issue 12.2): writers build the models, a field or kind the journal does not
know is refused before it is stored, every fold reads the typed body, and journals written before the
models (or by a newer version) still read."""

from __future__ import annotations

from pathlib import Path

import pytest

from sequencer.run import events as ev_
from sequencer.run.journal import Journal, read_events
from sequencer.run.state import rebuild

RUN = "20261204-120000-abcd"


def test_a_model_is_stored_as_its_writer_gave_it(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.sqlite", RUN) as j:
        e = j.append(ev_.StepStarted(stack="S1", uid="A1", tool="bonder1", tool_kind="bonder", job_id=7))
    assert e.kind == "step_started" and e.data == {"stack": "S1", "uid": "A1", "tool": "bonder1",
                                                   "kind": "bonder", "job_id": 7}
    body = read_events(tmp_path / "j.sqlite")[0].body
    assert isinstance(body, ev_.StepStarted) and body.tool_kind == "bonder" and body.job_id == 7


@pytest.mark.parametrize(("kind", "fields", "said"), [
    ("step_started", {"uid": "A1", "tool": "bonder1", "job": 7}, "job"),  # a misspelt field
    ("step_failed", {"uid": "A1", "reason": "x"}, "error"),  # a required field missing
    ("state", {"from": "IDLE", "to": 3}, "to"),  # a wrong type
    ("step_finished", {"uid": "A1"}, "not one of"),  # a kind nobody reads
])
def test_a_writer_bug_is_refused_before_it_is_stored(tmp_path: Path, kind: str, fields: dict[str, object],
                                                     said: str) -> None:
    with Journal(tmp_path / "j.sqlite", RUN) as j:
        with pytest.raises(ev_.UnknownEvent, match=said):
            j.append(kind, **fields)
        assert j.last_seq == 0
    assert read_events(tmp_path / "j.sqlite") == []


def test_older_and_newer_journals_still_read(tmp_path: Path) -> None:
    """Shapes of older versions (no stacks, rule, tool_boot; one traveler stack, claims as a list) and
    a kind from a newer version: the run rebuilds, the unknown event is kept and skipped."""
    with Journal(tmp_path / "j.sqlite", RUN) as j:
        j.append("run_created", flow="flow-a", wafers=2, line="emulated", time_scale=20000.0, stack_id="S1")
        j.append("step_started", uid="A1", tool="coater1", kind="coater", job_id=1)
        j.append("step_completed", uid="A1", tool="coater1", job_id=1, result={"film_thickness_um": 10})
        j.append("traveler", stack={"stack_id": "S1"}, claims=[])
    events = read_events(tmp_path / "j.sqlite")
    future = events[-1].model_copy(update={"seq": 5, "kind": "quantum_event", "data": {"x": 1}})
    snap = rebuild([*events, future])
    assert (snap.flow, snap.stack_id, snap.stacks, snap.rule) == ("flow-a", "S1", [], "most_steps_left")
    assert snap.steps["A1"].status == "completed" and snap.steps["A1"].kind == "coater"
    assert snap.traveler == {"stack_id": "S1"} and snap.last_seq == 5
    assert isinstance(future.body, ev_.Unrecognised)


def test_every_kind_written_today_has_a_model() -> None:
    written = {"run_created", "state", "step_started", "step_completed", "step_failed", "step_recovered",
               "step_unknown", "permissive_refused", "bypass", "bypass_used", "interlock_tripped",
               "result_rejected", "tool_abort", "tool_command", "stack_scrapped", "traveler", "note"}
    assert written <= set(ev_.BODIES)
    assert set(ev_.STEP_KINDS) >= {"step_started", "step_completed", "step_failed", "step_recovered",
                                   "step_unknown", "permissive_refused"}
