"""/metrics in the Prometheus text format (prometheus-client), from the HMI's shared snapshot: each
tool's E30 processing state, reachability and active alarm, the runs by state, and the commands the
HMI passed on. Its own registry: nothing of the process's other metrics leaks in."""

from __future__ import annotations

from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest

CONTENT_TYPE = CONTENT_TYPE_LATEST
REGISTRY = CollectorRegistry()
STATES = ("INIT", "IDLE", "SETUP", "READY", "EXECUTING", "PAUSE")
TOOL_STATE = Gauge("waferline_tool_state", "1 for the tool's current E30 processing state",
                   ["tool", "kind", "state"], registry=REGISTRY)
TOOL_UP = Gauge("waferline_tool_reachable", "1 if the tool answered its last status read", ["tool", "kind"],
                registry=REGISTRY)
TOOL_ALARM = Gauge("waferline_tool_alarm", "the active alarm's ALID (0: none)", ["tool", "kind", "class"],
                   registry=REGISTRY)
RUNS = Gauge("waferline_runs", "runs in the runs directory by state", ["state"], registry=REGISTRY)
COMMANDS = Counter("waferline_hmi_commands", "run commands sent from the HMI", ["command", "ok"],
                   registry=REGISTRY)


def render(snapshot: dict[str, Any]) -> bytes:
    TOOL_STATE.clear()
    TOOL_UP.clear()
    TOOL_ALARM.clear()
    RUNS.clear()
    for tool in snapshot.get("tools", []):
        name, kind = tool["name"], tool["kind"]
        TOOL_UP.labels(tool=name, kind=kind).set(1 if tool.get("ok") else 0)
        status = tool.get("status") or {}
        for state in STATES:
            TOOL_STATE.labels(tool=name, kind=kind, state=state).set(1 if status.get("state") == state else 0)
        alarm = status.get("alarm") or {}
        TOOL_ALARM.labels(tool=name, kind=kind, **{"class": alarm.get("alarm_class", "none")}).set(
            alarm.get("id", 0))
    counts: dict[str, int] = {}
    for run in snapshot.get("runs", []):
        counts[str(run.get("state"))] = counts.get(str(run.get("state")), 0) + 1
    for state, n in counts.items():
        RUNS.labels(state=state).set(n)
    return generate_latest(REGISTRY)
