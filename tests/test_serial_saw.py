"""Dicing saw over a real pty (and socket://): the DicingSaw driver against the serial emulator."""

from __future__ import annotations

import asyncio
import os
import select
import time
from pathlib import Path

import pytest

from drivers.addresses import SerialAddress
from drivers.channel import Timeouts
from drivers.errors import (
    CommandRejected,
    JobAborted,
    ProtocolError,
    ToolAlarm,
    ToolConnectionError,
    ToolTimeout,
)
from drivers.kinds import DicingSaw
from drivers.kinds.dicing_saw import INDEX_S, DicingSawRecipe
from drivers.profiles import SerialProfile
from drivers.tool import JobOutcome, ProcessState, ToolStatus
from sim_tools.faults import FaultKind, FaultSpec
from sim_tools.model import EmulatedTool
from sim_tools.servers.serial import SerialToolServer
from tests.fixtures.serial import SawFactory, make_saw

RECIPE = DicingSawRecipe(spindle_rpm=30000, feed_mm_s=10, cut_count=10, cut_length_mm=50)
LONG = DicingSawRecipe(spindle_rpm=30000, feed_mm_s=1, cut_count=500, cut_length_mm=300)
Served = tuple[SerialToolServer, SerialAddress]


def expected_cut_time(r: DicingSawRecipe) -> float:
    return r.cut_count * (r.cut_length_mm / r.feed_mm_s + INDEX_S)


async def test_status(saw: DicingSaw) -> None:
    st = await saw.status()
    assert st.state is ProcessState.IDLE and st.ready
    assert st.interlocks == {"door_closed": True, "cooling_water_ok": True, "emo_ok": True}
    assert st.values == {"spindle_speed_rpm": 0.0, "cuts_done": 0, "cooling_flow_lpm": 0.0}
    assert st.job_outcome is JobOutcome.NONE and st.alarm is None


async def test_full_runs_follow_cut_physics(saw: DicingSaw) -> None:
    first = await saw.run(RECIPE, job_id=11)
    assert first.job_id == 11 and first.cuts_completed == RECIPE.cut_count
    assert first.cut_time_s == pytest.approx(expected_cut_time(RECIPE), rel=0.01)
    assert first.blade_wear_um > 0
    second_recipe = RECIPE.model_copy(update={"cut_count": 20, "feed_mm_s": 25.0})
    second = await saw.run(second_recipe, job_id=12)
    assert second.cuts_completed == 20
    assert second.cut_time_s == pytest.approx(expected_cut_time(second_recipe), rel=0.01)
    assert second.blade_wear_um > first.blade_wear_um  # the blade wears over its life
    st = await saw.status()
    assert (st.job_id, st.job_outcome, st.state) == (12, JobOutcome.COMPLETED, ProcessState.IDLE)


async def test_abort_mid_run(saw: DicingSaw) -> None:
    aborted: list[int] = []

    async def monitor(st: ToolStatus) -> None:
        if st.state is ProcessState.EXECUTING and not aborted:
            aborted.append(st.job_id)
            await saw.abort()

    with pytest.raises(JobAborted):
        await saw.run(LONG, job_id=21, monitor=monitor)
    st = await saw.status()
    assert (st.state, st.job_outcome, st.job_id) == (ProcessState.IDLE, JobOutcome.ABORTED, 21)
    assert aborted == [21]
    partial = await saw.job_result(21)
    assert partial.cuts_completed < LONG.cut_count


async def test_start_rejected_with_door_open(saw: DicingSaw, saw_emulator: EmulatedTool) -> None:
    saw_emulator.set_interlock("door_closed", False)
    with pytest.raises(CommandRejected, match="interlock door_closed not made"):
        await saw.run(RECIPE, job_id=31)
    assert not (await saw.status()).ready


async def test_out_of_range_recipe_rejected_by_tool(saw: DicingSaw) -> None:
    args = {"job_id": 32, "spindle_rpm": 30000, "feed_mm_s": 0.5, "cut_count": 1,
            "cut_length_mm": 10}
    with pytest.raises(CommandRejected, match=r"feed_mm_s.*\(code 6\)"):
        await saw.channel.command("start", args)


async def test_alarm_mid_run(saw: DicingSaw, saw_emulator: EmulatedTool) -> None:
    saw_emulator.faults.set(FaultSpec(kind=FaultKind.ALARM, alarm_id=301, at_fraction=0.5))
    with pytest.raises(ToolAlarm) as info:
        await saw.run(RECIPE, job_id=41)
    assert (info.value.alarm_id, info.value.text) == (301, "blade broken")
    saw_emulator.faults.clear()
    await saw.reset()
    st = await saw.status()
    assert (st.state, st.job_outcome, st.alarm) == (ProcessState.IDLE, JobOutcome.FAILED, None)


async def test_alarm_before_start(saw: DicingSaw, saw_emulator: EmulatedTool) -> None:
    saw_emulator.raise_alarm(302)
    with pytest.raises(ToolAlarm, match="cooling water flow low"):
        await saw.run(RECIPE, job_id=42)


async def test_silence_times_out(saw_factory: SawFactory, saw_emulator: EmulatedTool) -> None:
    saw = await saw_factory(Timeouts(request_s=0.3))
    saw_emulator.faults.set(FaultSpec(kind=FaultKind.SILENCE))
    t0 = time.monotonic()
    with pytest.raises(ToolTimeout):
        await saw.status()
    assert 0.25 < time.monotonic() - t0 < 1.0
    saw_emulator.faults.clear()
    assert (await saw.status()).state is ProcessState.IDLE


async def test_late_reply_is_discarded(saw_factory: SawFactory, saw_emulator: EmulatedTool) -> None:
    """A reply arriving after its timeout must not be taken as the answer to the next request."""
    saw = await saw_factory(Timeouts(request_s=0.2))
    saw_emulator.faults.set(FaultSpec(kind=FaultKind.DELAY, delay_s=0.3))
    with pytest.raises(ToolTimeout):
        await saw.status()
    saw_emulator.faults.clear()
    await asyncio.sleep(0.3)  # the late STATUS line is now waiting in the driver's buffer
    result = await saw.job_result(0)  # RESULT? would fail to parse the stale status line
    assert result.cuts_completed == 0


async def test_garbled_reply_is_protocol_error(saw: DicingSaw, saw_emulator: EmulatedTool) -> None:
    saw_emulator.faults.set(FaultSpec(kind=FaultKind.GARBLE))
    with pytest.raises(ProtocolError, match="undecodable"):
        await saw.status()
    saw_emulator.faults.clear()
    assert (await saw.status()).state is ProcessState.IDLE


async def test_link_drop_then_recover(saw: DicingSaw, saw_emulator: EmulatedTool) -> None:
    saw_emulator.faults.set(FaultSpec(kind=FaultKind.LINK_DROP))
    with pytest.raises(ToolConnectionError):
        await saw.status()
    saw_emulator.faults.clear()
    assert (await saw.status()).state is ProcessState.IDLE  # new pty behind the same symlink


async def test_reconnect_after_emulator_restart(
    saw_factory: SawFactory, saw_pty_server: Served
) -> None:
    server, address = saw_pty_server
    saw = await saw_factory(Timeouts(connect_s=0.3, request_s=0.5, backoff_initial_s=0.02))
    await saw.status()
    await server.stop()
    # no stale link left pointing at a pts number the kernel may hand out again
    assert not await asyncio.to_thread(os.path.lexists, address.url)
    with pytest.raises(ToolConnectionError):
        await saw.status()
    assert await server.start() == address
    assert (await saw.status()).state is ProcessState.IDLE


async def test_concurrent_requests_stay_in_step(saw: DicingSaw) -> None:
    statuses, results = await asyncio.gather(
        asyncio.gather(*(saw.status() for _ in range(10))),
        asyncio.gather(*(saw.job_result(0) for _ in range(10))),
    )
    assert all(st.state is ProcessState.IDLE for st in statuses)
    assert all(r.cuts_completed == 0 for r in results)


def _ask(path: str, request: bytes, timeout: float = 2.0) -> bytes:
    """A plain client: no pyserial, no project code; just open the pty and talk."""
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        os.write(fd, request)
        reply = b""
        deadline = time.monotonic() + timeout
        while not reply.endswith(b"\r\n"):
            ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise TimeoutError(f"no reply line, got {reply!r}")
            reply += os.read(fd, 1024)
        return reply
    finally:
        os.close(fd)


async def test_independent_client_reads_documented_status(saw_pty_server: Served) -> None:
    path = saw_pty_server[1].url
    reply = await asyncio.to_thread(_ask, path, b"STATUS?\r\n")
    assert reply.startswith(b"STATE=IDLE ALARM=0")
    boot = saw_pty_server[0].tool.boot_id
    assert reply == (b"STATE=IDLE ALARM=0 JOB=0 OUTCOME=NONE BOOT=%d DOOR=1 CW=1 EMO=1 RPM=0 CUTS=0 "
                     b"FLOW=0.00\r\n" % boot)
    bogus = await asyncio.to_thread(_ask, path, b"BOGUS\r\n")
    assert bogus.startswith(b"ERR 2 unknown request")


async def test_emulator_adds_wire_time(
    saw_emulator: EmulatedTool, saw_profile: SerialProfile, tmp_path: Path
) -> None:
    server = SerialToolServer(
        saw_emulator, saw_profile, SerialAddress(url="pty", baud=9600), run_dir=tmp_path
    )
    address = await server.start()
    saw = make_saw(address)
    try:
        await saw.connect()
        line = server.reply_to(b"STATUS?\r\n")
        assert line is not None and len(line) >= 80
        t0 = time.monotonic()
        await saw.status()  # 80 bytes * 10 bits at 9600 baud: 83 ms on the wire
        assert time.monotonic() - t0 >= 0.98 * len(line) * 10 / 9600
    finally:
        await saw.close()
        await server.stop()


async def test_socket_status_and_full_run(saw_socket: DicingSaw) -> None:
    assert saw_socket.channel.address.url.startswith("socket://127.0.0.1:")  # type: ignore[attr-defined]
    assert (await saw_socket.status()).ready
    result = await saw_socket.run(RECIPE, job_id=51)
    assert result.cuts_completed == RECIPE.cut_count
    assert result.cut_time_s == pytest.approx(expected_cut_time(RECIPE), rel=0.01)
    assert result.blade_wear_um > 0


async def test_socket_reconnect_after_restart(saw_socket_server: Served) -> None:
    server, address = saw_socket_server
    saw = make_saw(address, Timeouts(connect_s=0.3, request_s=0.5, backoff_initial_s=0.02))
    async with saw:
        await saw.status()
        await server.stop()
        with pytest.raises(ToolConnectionError):
            await saw.status()
        assert await server.start() == address
        assert (await saw.status()).ready
