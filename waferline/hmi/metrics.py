"""/metrics in the Prometheus text format (prometheus-client), in a registry of its own.

Two sources: the HMI's shared snapshot (each tool's E30 state, reachability and alarm; runs by state;
the HMI's own status reads per transport: their round trips and the failed ones, i.e. missed polls)
and the runs' journals, through the report's accounting (sequencer/reports/accounting.py): jobs
started, completed and failed per tool, job durations per kind, holds and interlock trips, and the
E10 state time per tool. A journal is folded again only when it changed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from sequencer.reports.accounting import account
from sequencer.run.journal import JournalError, read_events
from sequencer.run.rundir import JOURNAL, list_runs, runs_dir
from waferline.hmi.stamps import journal_stamp

CONTENT_TYPE = CONTENT_TYPE_LATEST
STATES = ("INIT", "IDLE", "SETUP", "READY", "EXECUTING", "PAUSE")
BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
JOB_BUCKETS = (60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0)  # tool seconds


@dataclass
class RunFigures:
    jobs: Counter[tuple[str, str]] = field(default_factory=Counter)  # (tool, started|completed|failed)
    durations: dict[str, list[float]] = field(default_factory=dict)  # kind -> job tool seconds
    holds: int = 0
    trips: Counter[tuple[str, str]] = field(default_factory=Counter)  # (tool, interlock)
    e10: Counter[tuple[str, str]] = field(default_factory=Counter)  # (tool, productive|standby|down)


def fold(run_id: str) -> RunFigures:
    events = read_events(runs_dir() / run_id / JOURNAL)
    out = RunFigures()
    for ev in events:
        tool = str(ev.data.get("tool") or "")
        if ev.kind in ("step_started", "step_completed", "step_failed") and tool and tool != "-":
            out.jobs[(tool, ev.kind.removeprefix("step_"))] += 1
        elif ev.kind == "state" and ev.data.get("to") == "HELD":
            out.holds += 1
        elif ev.kind in ("interlock_tripped", "permissive_refused") and ev.data.get("interlock"):
            out.trips[(tool, str(ev.data["interlock"]))] += 1
    if events:
        acc = account(events)
        for job in acc.jobs:
            out.durations.setdefault(job.kind, []).append(job.end - job.start)
        for t in acc.tools:
            for state in ("productive", "standby", "down"):
                out.e10[(t.tool, state)] += getattr(t, state).tool
    return out


class Reads:
    """The HMI's own status reads per transport: how long, and how many failed."""

    def __init__(self) -> None:
        self.seconds: dict[str, list[float]] = {}
        self.failed: Counter[str] = Counter()

    def add(self, transport: str, seconds: float, ok: bool) -> None:
        self.seconds.setdefault(transport, []).append(seconds)
        del self.seconds[transport][:-10_000]
        if not ok:
            self.failed[transport] += 1


class HmiCollector(Collector):
    def __init__(self, snapshot: Callable[[], dict[str, Any]], reads: Reads,
                 commands: Counter[tuple[str, bool]]) -> None:
        self.snapshot, self.reads, self.commands = snapshot, reads, commands
        self._cache: dict[str, tuple[int, RunFigures]] = {}

    def _runs(self) -> list[RunFigures]:
        out = []
        for run_id in list_runs()[-50:]:
            try:
                stamp = journal_stamp(run_id)
                if self._cache.get(run_id, (None,))[0] != stamp:
                    self._cache[run_id] = (stamp, fold(run_id))
                out.append(self._cache[run_id][1])
            except (OSError, JournalError):
                continue
        return out

    def collect(self) -> Iterator[Metric]:
        yield from self._tools()
        runs = self._runs()
        jobs = CounterMetricFamily("waferline_jobs", "tool jobs by outcome, over the runs directory's runs",
                                   labels=["tool", "outcome"])
        for (tool, outcome), n in sorted(sum((r.jobs for r in runs), Counter()).items()):
            jobs.add_metric([tool, outcome], n)
        yield jobs
        yield _histogram("waferline_job_duration_tool_seconds", "job durations per kind (tool seconds)",
                         "kind", {k: [d for r in runs for d in r.durations.get(k, [])]
                                  for k in sorted({k for r in runs for k in r.durations})}, JOB_BUCKETS)
        yield CounterMetricFamily("waferline_holds", "times a run went HELD",
                                  value=sum(r.holds for r in runs))
        trips = CounterMetricFamily("waferline_interlock_trips", "interlock trips and refused permissives",
                                    labels=["tool", "interlock"])
        for (tool, lock), n in sorted(sum((r.trips for r in runs), Counter()).items()):
            trips.add_metric([tool, lock], n)
        yield trips
        e10 = CounterMetricFamily("waferline_e10_tool_seconds", "SEMI E10 state time per tool (tool seconds)",
                                  labels=["tool", "state"])
        for (tool, state), s in sorted(sum((r.e10 for r in runs), Counter()).items()):
            e10.add_metric([tool, state], s)
        yield e10
        yield _histogram("waferline_status_read_seconds", "the HMI's status reads per transport", "transport",
                         self.reads.seconds, BUCKETS)
        missed = CounterMetricFamily("waferline_status_reads_failed",
                                     "status reads that failed (missed polls)", labels=["transport"])
        for transport, n in sorted(self.reads.failed.items()):
            missed.add_metric([transport], n)
        yield missed
        commands = CounterMetricFamily("waferline_hmi_commands", "run commands sent from the HMI",
                                       labels=["command", "ok"])
        for (command, ok), n in sorted(self.commands.items()):
            commands.add_metric([command, str(ok).lower()], n)
        yield commands

    def _tools(self) -> Iterator[Metric]:
        state = GaugeMetricFamily("waferline_tool_state", "1 for the tool's current E30 processing state",
                                  labels=["tool", "kind", "state"])
        up = GaugeMetricFamily("waferline_tool_reachable", "1 if the tool answered its last status read",
                               labels=["tool", "kind", "transport"])
        alarm = GaugeMetricFamily("waferline_tool_alarm", "the active alarm's ALID (0: none)",
                                  labels=["tool", "kind", "class"])
        snapshot = self.snapshot()
        for tool in snapshot.get("tools", []):
            name, kind = tool["name"], tool["kind"]
            up.add_metric([name, kind, tool.get("transport", "")], 1 if tool.get("ok") else 0)
            status = tool.get("status") or {}
            for s in STATES:
                state.add_metric([name, kind, s], 1 if status.get("state") == s else 0)
            a = status.get("alarm") or {}
            alarm.add_metric([name, kind, a.get("alarm_class", "none")], a.get("id", 0))
        runs = GaugeMetricFamily("waferline_runs", "runs in the runs directory by state", labels=["state"])
        for s, n in sorted(Counter(str(r.get("state")) for r in snapshot.get("runs", [])).items()):
            runs.add_metric([s], n)
        yield from (state, up, alarm, runs)


def _histogram(name: str, doc: str, label: str, samples: dict[str, list[float]],
               buckets: tuple[float, ...]) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc, labels=[label])
    for key, values in sorted(samples.items()):
        counts = [(str(b), sum(1 for v in values if v <= b)) for b in buckets] + [("+Inf", len(values))]
        family.add_metric([key], counts, sum_value=sum(values))
    return family


def render(collector: HmiCollector) -> bytes:
    registry = CollectorRegistry()
    registry.register(collector)
    return generate_latest(registry)
