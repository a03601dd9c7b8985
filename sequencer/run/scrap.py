"""Scrap one stack of a HELD lot so the rest of the lot can go on.

A stack whose wafer ended ABORTED or UNKNOWN holds the whole lot: its next step is refused by the
wafer-state permissive on every restart. The operator's disposition is to scrap it: its wafers that
are not PROCESSED become ABORTED (E90: processing abandoned, material to be dispositioned off-line),
its in-doubt jobs are closed as failed (the tool's state is the operator's to settle: a tool still
holding a paused job refuses the next start, which holds the run again), the tools kept for them are
released, and the stack takes no further step. Journaled as `stack_scrapped` with who and why, so
resume and the report see it. Only while the run is HELD: nothing of the lot is then in a chamber
except the paused jobs this closes.
"""

from __future__ import annotations

from sequencer.process.traveler import E90State, Stack, set_state
from sequencer.run import events as ev_
from sequencer.run.control import RunState
from sequencer.run.process_job import Lot


def find_stack(lot: Lot, ref: str) -> Stack | None:
    """A stack by its full id or its short name within the run (S3)."""
    for stack in lot.stacks.values():
        if ref in (stack.stack_id, stack.stack_id.rsplit("-", 1)[-1]):
            return stack
    return None


def mark_scrapped(stack: Stack) -> list[int]:
    """Every wafer not yet PROCESSED becomes ABORTED; the ones changed."""
    changed = [w.index for w in stack.wafers if w.state is not E90State.PROCESSED]
    for index in changed:
        set_state(stack, index, E90State.ABORTED)
    return changed


def scrap_stack(lot: Lot, ref: str, who: str, why: str) -> str | None:
    """Scrap a stack of a HELD lot; None when done, else why not."""
    if lot.control.state is not RunState.HELD:
        return f"scrap only a HELD run (it is {lot.control.state}): hold it first"
    if len(why.strip()) < 10:
        return "scrap needs a reason of at least 10 characters (--why), for the traveler"
    stack = find_stack(lot, ref)
    if stack is None:
        known = ", ".join(s.rsplit("-", 1)[-1] for s in lot.stacks)
        return f"no stack {ref!r} in this run; stacks: {known}"
    if stack.stack_id in lot.scrapped:
        return f"stack {stack.stack_id} is already scrapped"
    for (stack_id, uid), doubt in list(lot.in_doubt.items()):
        if stack_id != stack.stack_id:
            continue
        lot.journal.append(ev_.StepFailed(stack=stack_id, uid=uid, tool=doubt.tool, job_id=doubt.job_id,
                                          error="Scrapped", reason=f"stack scrapped by {who}: {why}",
                                          wafer_state=E90State.ABORTED.value))
        del lot.in_doubt[(stack_id, uid)]
        lot.dispatcher.release(doubt.tool, stack_id)
    wafers = mark_scrapped(stack)
    lot.journal.append(ev_.StackScrapped(stack=stack.stack_id, who=who, why=why, wafers=wafers))
    lot.scrapped.add(stack.stack_id)
    return None
