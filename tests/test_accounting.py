"""E10/E116 accounting and the bottleneck bound on hand-built journals with figures worked out by hand.

time_scale 3600 makes one wall second one tool hour, so every expected figure below is a small number
of hours read straight off the event times.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sequencer.reports.accounting import LineAccounting, account
from sequencer.run.journal import Event

H = 3600.0
T0 = datetime(2026, 11, 22, 6, 0, 0, tzinfo=UTC)


class Log:
    """Builds a journal; `micro` writes the lot format's microsecond stamps, else the older milliseconds."""

    def __init__(self, micro: bool = True) -> None:
        self.events: list[Event] = []
        self.micro = micro

    def __call__(self, t: float, kind: str, /, **data: Any) -> None:
        spec = "microseconds" if self.micro else "milliseconds"
        stamp = (T0 + timedelta(seconds=t)).isoformat(timespec=spec)
        self.events.append(Event(seq=len(self.events) + 1, ts=stamp.replace("+00:00", "Z"), run_id="R",
                                 kind=kind, data=data))

    def state(self, t: float, old: str, new: str, who: str = "sequencer", why: str = "") -> None:
        self(t, "state", **{"from": old, "to": new, "command": "x", "who": who, "why": why})


def hours(acc: LineAccounting, tool: str) -> dict[str, float]:
    t = acc.tool(tool)
    return {name: round(getattr(t, name).tool / H, 6)
            for name in ("productive", "standby", "down", "busy", "idle", "blocked")}


def lot_journal() -> list[Event]:
    """Two stacks, pools coater x2 and plater x1; a refused permissive, then a trip mid-job."""
    log = Log()
    log(-1, "run_created", flow="f", wafers=1, line="l", time_scale=3600, stacks=["R-S1", "R-S2"],
        stack_id="R-S1", steps=["L", "C", "P"], pools={"coater": ["c1", "c2"], "plater": ["p1"]})
    log.state(0, "IDLE", "STARTING")
    log.state(0, "STARTING", "EXECUTE")
    for s in ("R-S1", "R-S2"):
        log(0, "step_completed", stack=s, uid="L", tool="-", job_id=0, result=None)
    log(0, "step_started", stack="R-S1", uid="C", tool="c1", kind="coater", job_id=1)
    log(0, "step_started", stack="R-S2", uid="C", tool="c2", kind="coater", job_id=2)
    log(2, "step_completed", stack="R-S1", uid="C", tool="c1", job_id=1, result={})
    log(2, "step_started", stack="R-S1", uid="P", tool="p1", kind="plater", job_id=3)
    log(3, "step_completed", stack="R-S2", uid="C", tool="c2", job_id=2, result={})
    log(4, "step_completed", stack="R-S1", uid="P", tool="p1", job_id=3, result={})
    log(4, "permissive_refused", stack="R-S2", uid="P", tool="p1", interlock="n2_supply_on", reason="no N2")
    log.state(4, "EXECUTE", "HOLDING", "interlock:n2_supply_on", "R-S2 P: no N2")
    log.state(4, "HOLDING", "HELD")
    log.state(6, "HELD", "UNHOLDING", "alice", "N2 back")
    log.state(6, "UNHOLDING", "EXECUTE")
    log(6, "step_started", stack="R-S2", uid="P", tool="p1", kind="plater", job_id=4)
    log(7, "interlock_tripped", stack="R-S2", uid="P", tool="p1", interlock="tool_alarm", reason="alarm 7",
        action="hold")
    log.state(7, "EXECUTE", "HOLDING", "interlock:tool_alarm", "R-S2 P: alarm 7")
    log.state(7, "HOLDING", "HELD")
    log.state(8, "HELD", "UNHOLDING", "bob", "alarm cleared")
    log.state(8, "UNHOLDING", "EXECUTE")
    log(9, "step_completed", stack="R-S2", uid="P", tool="p1", job_id=4, result={})
    log.state(9, "EXECUTE", "COMPLETING")
    log.state(9, "COMPLETING", "COMPLETE")
    return log.events


def test_lot_e10_e116_by_hand() -> None:
    acc = account(lot_journal())
    assert acc.window.tool == pytest.approx(9 * H) and acc.window.wall == pytest.approx(9.0)
    assert hours(acc, "c1") == {"productive": 2, "standby": 7, "down": 0, "busy": 2, "idle": 7, "blocked": 0}
    assert hours(acc, "c2") == {"productive": 3, "standby": 6, "down": 0, "busy": 3, "idle": 6, "blocked": 0}
    # p1: jobs 2-4 and 6-9, down 7-8 (trip until the run leaves HELD), refused 4-6 (until its next start)
    assert hours(acc, "p1") == {"productive": 4, "standby": 4, "down": 1, "busy": 4, "idle": 2, "blocked": 3}
    assert acc.tool("p1").utilization == pytest.approx(4 / 9)
    assert [(h.start / H, h.end / H) for h in acc.holds] == [(4, 6), (7, 8)]
    assert [(m.what, m.tool, m.stack, m.uid) for m in acc.marks if m.what != "hold"] == [
        ("refused", "p1", "R-S2", "P"), ("trip", "p1", "R-S2", "P")]


def test_lot_throughput_and_bottleneck_bound_by_hand() -> None:
    acc = account(lot_journal())
    assert acc.stacks_completed == ["R-S1", "R-S2"]
    assert acc.makespan.tool == pytest.approx(9 * H)
    assert acc.throughput_per_hour == pytest.approx(2 / 9)
    kinds = {k.kind: k for k in acc.kinds}
    assert kinds["coater"].occupancy_per_stack.tool == pytest.approx(2.5 * H)  # (2 + 3) / 2 stacks
    assert kinds["coater"].bound_per_hour == pytest.approx(2 / 2.5)  # two coaters
    assert kinds["plater"].occupancy_per_stack.tool == pytest.approx(2 * H)  # S2's job minus its down hour
    assert kinds["plater"].bound_per_hour == pytest.approx(0.5)
    assert acc.bottleneck == "plater" and acc.bound_per_hour == pytest.approx(0.5)
    assert acc.ratio == pytest.approx(4 / 9)
    # the identity the docstring promises: ratio == bottleneck pool utilization over the makespan
    assert kinds["plater"].utilization == pytest.approx(acc.ratio)
    assert kinds["coater"].utilization == pytest.approx(5 / 18)


def old_journal() -> list[Event]:
    """Older single-stack format: no `stack`, no pools, a refusal without `tool`; an unknown outcome."""
    log = Log(micro=False)
    log(0, "run_created", flow="f", wafers=2, line="l", time_scale=3600, stack_id="R-S1", steps=["A", "B"])
    log.state(0, "IDLE", "STARTING")
    log.state(0, "STARTING", "EXECUTE")
    log(0, "step_started", uid="A", tool="t1", kind="k1", job_id=1, tool_job_before=0)
    log(1, "step_unknown", uid="A", tool="t1", job_id=1, reason="link lost")
    log.state(1, "EXECUTE", "HOLDING", "interlock:outcome_unknown", "A: outcome of A on t1 unknown")
    log.state(1, "HOLDING", "HELD")
    log.state(3, "HELD", "UNHOLDING", "op", "link back")
    log.state(3, "UNHOLDING", "EXECUTE")
    log(3, "step_recovered", uid="A", tool="t1", job_id=1, outcome="COMPLETED")
    log(3, "step_completed", uid="A", tool="t1", job_id=1, result={}, recovered=True)
    log(3, "permissive_refused", uid="B", interlock="door_closed", reason="door open")
    log.state(3, "EXECUTE", "HOLDING", "interlock:door_closed", "B: door open")
    log.state(3, "HOLDING", "HELD")
    log.state(5, "HELD", "UNHOLDING", "op", "door shut")
    log.state(5, "UNHOLDING", "EXECUTE")
    log(5, "step_started", uid="B", tool="t2", kind="k2", job_id=2, tool_job_before=0)
    log(6, "step_completed", uid="B", tool="t2", job_id=2, result={})
    log.state(6, "EXECUTE", "COMPLETING")
    log(6, "traveler", stack={}, claims=[])
    log.state(6, "COMPLETING", "COMPLETE")
    return log.events


def test_older_journal_by_hand() -> None:
    acc = account(old_journal())
    assert acc.stacks == ["R-S1"] and acc.stacks_completed == ["R-S1"]
    # t1: job 0-1, then down 1-3 (unknown outcome until the run leaves HELD), blocked while down
    assert hours(acc, "t1") == {"productive": 1, "standby": 3, "down": 2, "busy": 1, "idle": 3, "blocked": 2}
    # t2: the refusal names no tool; its next start (t2) does: blocked 3-5
    assert hours(acc, "t2") == {"productive": 1, "standby": 5, "down": 0, "busy": 1, "idle": 3, "blocked": 2}
    job_a = next(j for j in acc.jobs if j.uid == "A")
    assert job_a.outcome == "completed" and job_a.recovered and job_a.stack == "R-S1"
    assert {k.kind: k.pool for k in acc.kinds} == {"k1": ["t1"], "k2": ["t2"]}  # pools from the tools seen
    assert acc.throughput_per_hour == pytest.approx(1 / 6) and acc.bound_per_hour == pytest.approx(1.0)
    assert acc.ratio == pytest.approx(1 / 6)


def test_job_never_resolved_closes_at_abort() -> None:
    log = Log()
    log(0, "run_created", time_scale=3600, stack_id="R-S1", stacks=["R-S1"], steps=["A"], pools={"k": ["t"]})
    log.state(0, "STARTING", "EXECUTE")
    log(0, "step_started", stack="R-S1", uid="A", tool="t", kind="k", job_id=1)
    log.state(2, "EXECUTE", "HOLDING", "interlock:tool_alarm", "A: t: alarm 101: chuck over-temperature")
    log.state(2, "HOLDING", "HELD")
    log.state(5, "HELD", "ABORTING", "bob", "scrap")
    log.state(5, "ABORTING", "ABORTED")
    log(6, "traveler", stacks=[], claims={})
    acc = account(log.events)
    job = acc.jobs[0]
    assert (job.outcome, job.start, job.end) == ("open", 0.0, pytest.approx(5 * H))
    assert hours(acc, "t") == {"productive": 2, "standby": 1, "down": 3, "busy": 2, "idle": 1, "blocked": 3}
    assert acc.stacks_completed == [] and acc.bound_per_hour is None and acc.ratio is None
    assert acc.throughput_per_hour == 0.0 and acc.tool("t").failed_jobs == 1


def test_job_the_tool_never_received_is_not_productive() -> None:
    log = Log()
    log(0, "run_created", time_scale=3600, stack_id="S", steps=["A"], pools={"k": ["t"]})
    log.state(0, "STARTING", "EXECUTE")
    log(0, "step_started", stack="S", uid="A", tool="t", kind="k", job_id=1)
    log(2, "step_recovered", stack="S", uid="A", tool="t", job_id=1, outcome="NOT_STARTED")
    log(2, "step_started", stack="S", uid="A", tool="t", kind="k", job_id=2)
    log(3, "step_completed", stack="S", uid="A", tool="t", job_id=2, result={})
    log.state(3, "EXECUTE", "COMPLETING")
    acc = account(log.events)
    assert [j.outcome for j in acc.jobs] == ["not_started", "completed"]
    assert hours(acc, "t")["productive"] == 1 and hours(acc, "t")["standby"] == 2
    assert acc.kinds[0].occupancy_per_stack.tool == pytest.approx(H)
