"""Abort reaches the tools: every job in a chamber and every in-doubt job, read back and journaled.

An abort of the run is the operator's "safe state now". It is sent to every tool that holds one of
the lot's jobs - the jobs the sequencer is watching and the jobs in doubt (a lost link, a silent
tool), whose tool may still be processing. Each tool is then read back until it has left EXECUTING;
`tool_abort` journals what it showed, and a tool that did not leave EXECUTING (or could not be
reached) is journaled `confirmed: false` and reported, for the operator to go to the tool. In-doubt
jobs are then resolved from the tool's answer like on a restart (recovery.py), so the run ends with
every wafer's E90 state known or UNKNOWN, never IN_PROCESS.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from drivers.errors import ToolError
from drivers.tool import JobOutcome, ProcessState, Tool, ToolStatus
from sequencer.run import events as ev_

if TYPE_CHECKING:
    from sequencer.run.process_job import ProcessJobs

log = logging.getLogger(__name__)
CONFIRM_S = 5.0  # wall seconds a tool gets to show it left EXECUTING after the abort command
BUSY = (ProcessState.SETUP, ProcessState.READY, ProcessState.EXECUTING)


def still_processing(status: ToolStatus) -> bool:
    return status.state in BUSY or (status.job_outcome is JobOutcome.RUNNING and status.alarm is None)


async def abort_and_read_back(tool: Tool[Any, Any]) -> tuple[bool, str]:
    """Send abort, then read the tool until it left EXECUTING: (confirmed, what it showed)."""
    try:
        await tool.abort()
    except ToolError as exc:
        return False, f"abort not delivered: {exc.reason}"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max(CONFIRM_S, tool.channel.timeouts.request_s)
    shown = "no status read"
    while True:
        try:
            st = await tool.status()
            shown = f"{st.state}, job {st.job_id} {st.job_outcome}"
            if not still_processing(st):
                return True, shown
        except ToolError as exc:
            shown = f"status unreadable: {exc.reason}"
        if loop.time() > deadline:
            return False, f"still {shown} after {max(CONFIRM_S, tool.channel.timeouts.request_s):g} s"
        await asyncio.sleep(max(tool.poll_interval_s, 0.01))


async def abort_lot(jobs: ProcessJobs) -> None:
    """Abort every tool holding a job of the lot, read each back, then resolve the in-doubt jobs."""
    lot = jobs.lot
    names = {tool.name for tool in lot.running.values()} | {d.tool for d in lot.in_doubt.values()}
    results = await asyncio.gather(*(abort_and_read_back(lot.tools[n]) for n in sorted(names)))
    unconfirmed: dict[str, str] = {}
    for name, (confirmed, shown) in zip(sorted(names), results, strict=True):
        lot.journal.append(ev_.ToolAbort(tool=name, confirmed=confirmed, shown=shown))
        if not confirmed:
            unconfirmed[name] = shown
            log.error("abort of %s not confirmed: %s; go to the tool", name, shown)
            lot.observer("abort_unconfirmed", None, {"tool": name, "reason": shown})
    for key, doubt in list(lot.in_doubt.items()):
        if key in lot.running or key in lot.resolving:
            continue  # its own waiter sees the aborted job end and records it
        stack, step = lot.stacks[key[0]], next(s for s in lot.steps if s.uid == key[1])
        if doubt.tool in unconfirmed:  # do not wait hours for a job the tool may still be running
            jobs.mark_unknown(stack, step, f"abort of {doubt.tool} not confirmed: {unconfirmed[doubt.tool]}")
        else:
            await jobs.resolve(stack, step)
