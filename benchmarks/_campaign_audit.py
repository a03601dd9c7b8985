"""The campaign's audit of one run: what the tools did (their own job ledger) against the journal.

Counted from the emulators' ledger (`sim up` control socket, `jobs`), never from the journal alone:
  doubled   a step whose wafer a tool accepted more than one job for, or a job no step_started names
  lost      a step of a completed, unscrapped stack with no COMPLETED job on any tool, or a step the
            journal records completed whose job the tool did not complete
  violation a start a tool received against an interlock already open (or an alarm already set) when
            the tool last reported its status to the controller; one racing an opening it had not yet
            reported is counted apart (the tool's own refusal is the layer that catches it)
A stack scrapped because of a step whose job the ledger shows COMPLETED is a good stack thrown away.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sequencer.run.journal import Event


@dataclass
class RunAudit:
    seed: int
    fault: str
    tool: str
    outcome: str
    doubled: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    raced: list[str] = field(default_factory=list)  # starts racing an opening, refused by the tool
    tracebacks: int = 0
    scrapped: list[str] = field(default_factory=list)  # why, per scrapped stack
    scrapped_completed: int = 0  # stacks scrapped over a step the tool completed
    safety_mid_job: bool = False  # a door or EMO opened while a job ran
    notes: list[str] = field(default_factory=list)


def new_ledger_entries(before: dict[str, int], ledger: dict[str, list[dict[str, Any]]]
                       ) -> dict[int, tuple[str, str]]:
    """job id -> (tool, outcome) for the jobs tools accepted since `before` (ledger lengths)."""
    return {e["job_id"]: (tool, e["outcome"])
            for tool, entries in ledger.items() for e in entries[before.get(tool, 0):]}


def audit(run: RunAudit, events: list[Event], jobs: dict[int, tuple[str, str]], tool_uids: set[str]) -> None:
    """Fill `run`'s doubled, lost and scrapped-completed counts from its journal and the ledger;
    `tool_uids` are the flow's steps done on a tool."""
    job_step = {e.data["job_id"]: (e.data.get("stack", ""), e.data["uid"])
                for e in events if e.kind == "step_started"}
    accepted = Counter(job_step[j] for j in jobs if j in job_step)
    run.doubled += [f"{s} {u} accepted {n} times" for (s, u), n in accepted.items() if n > 1]
    run.doubled += [f"job {j} on {t} ({o}) names no step" for j, (t, o) in jobs.items() if j not in job_step]
    scrapped = {e.data["stack"] for e in events if e.kind == "stack_scrapped"}
    for e in events:
        if e.kind == "step_completed" and e.data.get("tool") not in (None, "-"):
            tool_says = jobs.get(e.data["job_id"], ("?", "not accepted"))[1]
            if tool_says != "COMPLETED":
                run.lost.append(f"{e.data['uid']}: journal completed, tool says {tool_says}")
    if run.outcome == "COMPLETE":
        done = {job_step[j] for j, (_t, o) in jobs.items() if o == "COMPLETED" and j in job_step}
        for stack in [str(s) for s in events[0].data.get("stacks", [])]:
            if stack not in scrapped:
                run.lost += [f"{stack} {u}: no completed job"
                             for u in sorted(tool_uids) if (stack, u) not in done]
    for e in events:
        if e.kind != "stack_scrapped":
            continue
        run.scrapped.append(str(e.data.get("why", "")))
        doubtful = [e2.data["job_id"] for e2 in events if e2.seq < e.seq and e2.kind == "step_unknown"
                    and e2.data.get("stack") == e.data["stack"]]
        if any(jobs.get(j, ("", ""))[1] == "COMPLETED" for j in doubtful):
            run.scrapped_completed += 1
