"""The dispatcher's rule on its own: most steps left first, lot order on ties, longest-idle tool."""

from __future__ import annotations

import asyncio

import pytest

from sequencer.run.dispatcher import Dispatcher


async def test_free_tool_goes_to_the_job_with_most_steps_left_then_lot_order() -> None:
    d = Dispatcher({"coater": ["coater1"]})
    assert await d.acquire("coater", "S1", (0, 0)) == "coater1"
    late = asyncio.create_task(d.acquire("coater", "S3", (7, 2)))  # step 7: fewer steps left
    tie_late = asyncio.create_task(d.acquire("coater", "S2", (3, 1)))
    tie_early = asyncio.create_task(d.acquire("coater", "S0", (3, 0)))
    await asyncio.sleep(0)
    order = []
    for _ in range(3):
        d.release("coater1", d.owner("coater1") or "S1")
        await asyncio.sleep(0)
        order.append(d.owner("coater1"))
    assert order == ["S0", "S2", "S3"]
    assert [t.result() for t in (tie_early, tie_late, late)] == ["coater1"] * 3


async def test_the_longest_idle_tool_of_a_pool_is_taken() -> None:
    d = Dispatcher({"etcher": ["etcher1", "etcher2"]})
    first = await d.acquire("etcher", "S1", (0, 0))
    second = await d.acquire("etcher", "S2", (0, 1))
    assert {first, second} == {"etcher1", "etcher2"}
    d.release("etcher2", d.owner("etcher2") or "")
    await asyncio.sleep(0.01)
    d.release("etcher1", d.owner("etcher1") or "")
    assert await d.acquire("etcher", "S3", (1, 0)) == "etcher2"  # idle longer than etcher1


async def test_preempt_calls_waiting_jobs_back_and_keeps_no_tool() -> None:
    d = Dispatcher({"plater": ["plater1"]})
    await d.acquire("plater", "S1", (0, 0))
    waiting = asyncio.create_task(d.acquire("plater", "S2", (0, 1)))
    await asyncio.sleep(0)
    d.preempt()
    assert await waiting is None
    d.release("plater1", "S1")
    assert d.busy() == {}


async def test_a_reserved_tool_serves_only_its_stack() -> None:
    d = Dispatcher({"bonder": ["bonder1"]})
    d.reserve("bonder1", "S2")  # an in-doubt job of S2 on it
    other = asyncio.create_task(d.acquire("bonder", "S1", (0, 0)))
    await asyncio.sleep(0.01)
    assert not other.done()
    with pytest.raises(RuntimeError, match="held by S2"):
        d.reserve("bonder1", "S3")
    d.release("bonder1", "S1")  # not the owner: ignored
    assert d.owner("bonder1") == "S2"
    d.release("bonder1", "S2")
    assert await other == "bonder1"


async def test_a_cancelled_waiter_leaves_no_tool_taken() -> None:
    d = Dispatcher({"saw": ["saw1"]})
    await d.acquire("saw", "S1", (0, 0))
    waiting = asyncio.create_task(d.acquire("saw", "S2", (0, 1)))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    d.release("saw1", "S1")
    assert d.busy() == {}
    assert await d.acquire("saw", "S3", (0, 2)) == "saw1"
