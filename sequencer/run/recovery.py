"""What a tool's answer about an in-doubt job means, and the wafer's E90 state that follows from it.

One judgement for both ways a job goes in doubt and is resolved: on `restart` of a HELD run (a lost
link, silence, a garbled frame, a broker restart) and on `resume` after the controller died. The same
functions decide the live run's state and rebuild it from the journal, so the two can never disagree.

  the tool reports our job COMPLETED       -> COMPLETED: its results are recorded, the step is done
  our job still RUNNING, no alarm          -> RUNNING: wait for it as if nothing had happened
  our job RUNNING with an alarm (PAUSE)    -> PAUSED: the run holds, the operator decides
  our job ABORTED or FAILED                -> ABORTED / FAILED: the wafer is ABORTED
  the previous job, ended, same boot       -> NOT_STARTED: the start never reached the tool; run it
  anything else (another job, a restarted
  tool, a tool without a boot identity)    -> UNKNOWN: the wafer is UNKNOWN, for the operator

"Never started" is the only answer that lets a step run again, so it needs proof: the tool still
shows the job it had before ours, has not ended it since, and has not restarted (same boot id). A tool
that power-cycled forgot what it was sent and cannot vouch for that.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from drivers.tool import JobOutcome, ToolStatus
from sequencer.process.flow import Step
from sequencer.process.stack_model import E90State, Stack


class Recovery(StrEnum):
    COMPLETED = "COMPLETED"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    ABORTED = "ABORTED"
    FAILED = "FAILED"
    NOT_STARTED = "NOT_STARTED"
    UNKNOWN = "UNKNOWN"


@dataclass(frozen=True)
class InDoubt:
    """A started job whose end the sequencer has not seen, and what the tool showed before the start."""

    tool: str
    job_id: int
    tool_job_before: int
    tool_boot: int | None = None  # the tool's boot id when the start was sent (None: older journals)


@dataclass(frozen=True)
class Verdict:
    outcome: Recovery
    reason: str


def judge(doubt: InDoubt, status: ToolStatus) -> Verdict:
    """What the tool's status says about the in-doubt job. Pure: no I/O, no journal."""
    job, tool = doubt.job_id, doubt.tool
    if doubt.tool_boot is not None and status.boot_id != doubt.tool_boot:
        return Verdict(Recovery.UNKNOWN,
                       f"{tool} restarted since job {job} was sent (boot id {doubt.tool_boot} -> "
                       f"{status.boot_id}): a restarted tool cannot vouch for what it was sent")
    if status.job_id == job:
        outcome = status.job_outcome
        if outcome is JobOutcome.COMPLETED:
            return Verdict(Recovery.COMPLETED, f"{tool} completed job {job}")
        if outcome is JobOutcome.RUNNING and status.alarm is None:
            return Verdict(Recovery.RUNNING, f"{tool} is still running job {job}")
        if outcome is JobOutcome.RUNNING:
            a = status.alarm
            assert a is not None
            return Verdict(Recovery.PAUSED, f"{tool}: alarm {a.id}: {a.text}")
        if outcome in (JobOutcome.ABORTED, JobOutcome.FAILED):
            return Verdict(Recovery(outcome.value), f"job {job} on {tool}: {outcome}")
        return Verdict(Recovery.UNKNOWN, f"{tool} shows job {job} with outcome {outcome}")
    if doubt.tool_boot is None:
        return Verdict(Recovery.UNKNOWN,
                       f"{tool} reports job {status.job_id}, not ours ({job}), and the journal has no boot "
                       "id to prove the tool did not restart")
    if status.job_id == doubt.tool_job_before and status.job_outcome is not JobOutcome.RUNNING:
        return Verdict(Recovery.NOT_STARTED, f"{tool} never received job {job}")
    return Verdict(Recovery.UNKNOWN, f"{tool} reports job {status.job_id}, neither ours ({job}) nor its "
                                     f"previous one ({doubt.tool_job_before})")


def state_before(stack: Stack, step: Step) -> E90State:
    """The wafer's E90 state before the step started: IN_PROCESS once any step has touched it."""
    touched = any(step.wafer in h.wafers for h in stack.history)
    return E90State.IN_PROCESS if touched else E90State.NEEDS_PROCESSING


def wafer_state(stack: Stack, step: Step, outcome: Recovery | str) -> E90State:
    """The E90 state of the step's wafer once the tool has answered `outcome` (a COMPLETED step then
    moves on through the traveler's apply_step, which advances IN_PROCESS to PROCESSED)."""
    try:
        answer = Recovery(outcome)
    except ValueError:  # an outcome this code does not know: no proof of anything
        answer = Recovery.UNKNOWN
    match answer:
        case Recovery.COMPLETED | Recovery.RUNNING | Recovery.PAUSED:
            return E90State.IN_PROCESS
        case Recovery.NOT_STARTED:
            return state_before(stack, step)
        case Recovery.ABORTED | Recovery.FAILED:
            return E90State.ABORTED
        case _:
            return E90State.UNKNOWN
