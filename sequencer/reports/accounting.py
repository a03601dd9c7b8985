"""E10/E116 time accounting of one run, from its journal alone, and the line's bottleneck bound.

The run's WINDOW opens when the run first enters EXECUTE (the line may start work; fallback: the first
step_started) and closes at the journal's last event (or at `until`, for a run still going). Figures
come in tool seconds (wall seconds x run_created.time_scale) and wall seconds. Per tool, every instant
of the window is exactly one of:

E10 (SEMI E10 equipment states)
  down        from a trip on that tool - interlock_tripped, an `alarm` event, step_unknown, or a hold by
              interlock:tool_alarm / tool_reachable / outcome_unknown naming the tool in its reason -
              until the tool next starts a job or the run leaves HOLDING/HELD, whichever comes first.
  productive  otherwise, while a process job is open on it: step_started -> its step_completed / failed /
              unknown (a job never resolved closes when the run reaches a final state or the journal ends).
              A job the tool never ran (step_recovered NOT_STARTED, step_failed started=False) is not
              productive. A sequencer crash gap inside a job counts as productive: the tool kept the wafer.
  standby     the rest.
E116 (equipment performance tracking)
  busy        == productive.
  blocked     not busy, and the tool had work it could not run: it is down (a paused or tripped job), or a
              permissive was refused for it (until its next job start), or the run is HOLDING/HELD while a
              refused, failed or unknown step of some stack waits for it.
  idle        the rest.

Throughput and the bottleneck bound: makespan = first step_started to the last job outcome; throughput =
completed stacks per tool-hour of makespan. For each kind k with pool size m_k (run_created.pools, else
the tools seen) and mean occupancy per completed stack w_k (the productive time of that stack's jobs on
kind k, retries included), bound = min_k m_k / w_k and the bottleneck is the argmin. Then
ratio = throughput / bound = N w_k / (m_k makespan): exactly the bottleneck pool's utilization over the
makespan (`KindBound.utilization`) whenever every job on that pool belongs to a completed stack.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from pydantic import BaseModel

from sequencer.reports.timeline import NOT_RUN, Job, Mark, Span, Timeline
from sequencer.run.journal import Event

HOUR = 3600.0


class Seconds(BaseModel):
    tool: float  # tool seconds: the emulators' physics time; real seconds on a real line
    wall: float


class ToolAccount(BaseModel):
    tool: str
    kind: str
    productive: Seconds
    standby: Seconds
    down: Seconds
    busy: Seconds
    idle: Seconds
    blocked: Seconds
    jobs: int
    failed_jobs: int  # failed, unknown or never resolved
    utilization: float  # productive / window


class KindBound(BaseModel):
    kind: str
    pool: list[str]
    occupancy_per_stack: Seconds  # w_k: mean over the completed stacks
    bound_per_hour: float | None  # m_k / w_k in stacks per tool-hour; None: no work of this kind
    utilization: float  # the pool's productive time inside the makespan / (m_k x makespan)


class LineAccounting(BaseModel):
    time_scale: float
    window_start: str  # ISO time the window opens
    window: Seconds
    makespan: Seconds
    stacks: list[str]
    stacks_completed: list[str]
    steps_done: dict[str, list[str]]  # stack -> uids completed, kind-less loads included
    throughput_per_hour: float  # completed stacks per tool-hour of makespan
    bound_per_hour: float | None
    bottleneck: str | None
    ratio: float | None  # throughput / bound
    tools: list[ToolAccount]
    kinds: list[KindBound]
    jobs: list[Job]
    holds: list[Span]
    downs: list[Span]
    refusals: list[Span]
    waits: list[Span]
    marks: list[Mark]

    def tool(self, name: str) -> ToolAccount:
        return next(t for t in self.tools if t.tool == name)


def _covers(spans: Sequence[tuple[float, float]], t: float) -> bool:
    return any(a <= t < b for a, b in spans)


def _overlap(a0: float, a1: float, spans: Sequence[Span]) -> float:
    return sum(max(0.0, min(a1, s.end) - max(a0, s.start)) for s in spans)


Spans = list[tuple[float, float]]


def _spans(items: Sequence[Span] | Sequence[Job]) -> Spans:
    return [(s.start, s.end) for s in items]


def _sweep(lo: float, hi: float, jobs: Spans, downs: Spans, refusals: Spans, holds: Spans,
           waits: Spans) -> dict[str, float]:
    """Totals per state over [lo, hi] for one tool: cut at every span edge, classify each piece."""
    edges = {lo, hi} | {x for span in [*jobs, *downs, *refusals, *holds, *waits] for x in span}
    cuts = sorted(x for x in edges if lo <= x <= hi)
    out = dict.fromkeys(("productive", "standby", "down", "busy", "idle", "blocked"), 0.0)
    for a, b in itertools.pairwise(cuts):
        mid, width = (a + b) / 2, b - a
        down, running = _covers(downs, mid), _covers(jobs, mid)
        e10 = "down" if down else "productive" if running else "standby"
        out[e10] += width
        if e10 == "productive":
            out["busy"] += width
        elif down or _covers(refusals, mid) or (_covers(holds, mid) and _covers(waits, mid)):
            out["blocked"] += width
        else:
            out["idle"] += width
    return out


def account(events: list[Event], until: str | None = None) -> LineAccounting:
    """The E10/E116 accounting, throughput and bottleneck bound of one run's journal events; `until` (ISO
    time, e.g. now for a run whose sequencer is still alive) extends the window past the last event."""
    tl = Timeline(events, until)
    scale, window = tl.scale, tl.end

    def secs(tool_s: float) -> Seconds:
        return Seconds(tool=tool_s, wall=tool_s / scale)

    for job in tl.jobs:
        downs = [s for s in tl.downs if s.tool == job.tool]
        job.productive = 0.0 if job.outcome in NOT_RUN else job.end - job.start - _overlap(job.start, job.end,
                                                                                           downs)
    pools = {k: sorted(v) for k, v in tl.pools.items()}
    for tool, kind in tl.tools_seen.items():
        if tool not in {n for names in pools.values() for n in names}:
            pools.setdefault(kind, []).append(tool)
    ran = [j for j in tl.jobs if j.outcome not in NOT_RUN]
    ended = [j.end for j in tl.jobs if j.outcome != "open"] or [j.end for j in tl.jobs]
    ms_lo = min((j.start for j in tl.jobs), default=0.0)
    ms_hi = max(ended, default=ms_lo)

    def per_tool(tool: str, lo: float, hi: float) -> dict[str, float]:
        return _sweep(lo, hi, _spans([j for j in ran if j.tool == tool]),
                      _spans([s for s in tl.downs if s.tool == tool]),
                      _spans([s for s in tl.refusals if s.tool == tool]), _spans(tl.holds),
                      _spans([s for s in tl.waits if s.tool == tool]))

    accounts = []
    for kind in sorted(pools):
        for tool in pools[kind]:
            got = per_tool(tool, 0.0, window)
            mine = [j for j in tl.jobs if j.tool == tool]
            accounts.append(ToolAccount(
                tool=tool, kind=kind, **{k: secs(v) for k, v in got.items()}, jobs=len(mine),
                failed_jobs=sum(j.outcome in ("failed", "unknown", "open") for j in mine),
                utilization=got["productive"] / window if window > 0 else 0.0))

    stacks = tl.stacks + sorted({j.stack for j in tl.jobs} - set(tl.stacks))
    completed = [s for s in stacks if tl.steps and set(tl.steps) <= tl.done.get(s, set())]
    if not completed and tl.final_state == "COMPLETE":
        completed = list(stacks)  # a journal without a step list: COMPLETE means every stack finished
    makespan = ms_hi - ms_lo
    throughput = len(completed) / (makespan / HOUR) if makespan > 0 else 0.0
    kinds = []
    for kind in sorted(pools):
        pool = pools[kind]
        w = (sum(j.productive for j in tl.jobs if j.kind == kind and j.stack in completed) / len(completed)
             if completed else 0.0)
        in_ms = sum(per_tool(t, ms_lo, ms_hi)["productive"] for t in pool)
        kinds.append(KindBound(
            kind=kind, pool=pool, occupancy_per_stack=secs(w),
            bound_per_hour=len(pool) / (w / HOUR) if w > 0 else None,
            utilization=in_ms / (len(pool) * makespan) if makespan > 0 and pool else 0.0))
    bounded = [k for k in kinds if k.bound_per_hour is not None]
    neck = min(bounded, key=lambda k: k.bound_per_hour or 0.0) if bounded else None
    bound = neck.bound_per_hour if neck else None
    return LineAccounting(
        time_scale=scale, window_start=tl.origin_ts, window=secs(window), makespan=secs(makespan),
        stacks=stacks, stacks_completed=completed, steps_done={s: sorted(d) for s, d in tl.done.items()},
        throughput_per_hour=throughput, bound_per_hour=bound, bottleneck=neck.kind if neck else None,
        ratio=throughput / bound if bound else None, tools=accounts, kinds=kinds, jobs=tl.jobs,
        holds=tl.holds, downs=tl.downs, refusals=tl.refusals, waits=tl.waits, marks=tl.marks)
