"""The bonder driver against its emulator over real Modbus TCP sockets (and RTU on a pty)."""

from __future__ import annotations

import asyncio
import shutil
import time

import pytest

from drivers.channel import Timeouts
from drivers.errors import (
    CommandRejected,
    JobAborted,
    ProtocolError,
    ToolAlarm,
    ToolConnectionError,
    ToolTimeout,
)
from drivers.kinds.bonder import Bonder, BonderRecipe
from drivers.profiles import ModbusProfile
from drivers.tool import JobOutcome, ProcessState
from sim_tools.faults import FaultKind, FaultSpec
from sim_tools.model import EmulatedTool
from sim_tools.servers.modbus import ModbusToolServer
from tests.fixtures.modbus import make_bonder

RECIPE = BonderRecipe(temp_c=200, force_kn=20, hold_s=600, vacuum_mbar=0.01, ramp_c_per_min=20)
LONG = BonderRecipe(temp_c=200, force_kn=20, hold_s=7200)


async def wait_for_state(tool: EmulatedTool, state: str) -> None:
    """Wait on the model's own change notifications (no polling) for up to 5 s."""
    changed = asyncio.Event()
    tool.add_listener(changed.set)
    try:
        async with asyncio.timeout(5):
            while tool.state != state:
                changed.clear()
                await changed.wait()
    finally:
        tool.remove_listener(changed.set)


async def test_status_idle(bonder: Bonder) -> None:
    st = await bonder.status()
    assert st.state is ProcessState.IDLE and st.ready
    assert st.interlocks == dict.fromkeys(Bonder.interlock_inputs, True)
    assert st.values == {
        "chuck_temp_c": 25.0, "applied_force_kn": 0.0, "chamber_pressure_mbar": 1013.0
    }
    assert (st.job_id, st.job_outcome, st.alarm) == (0, JobOutcome.NONE, None)


async def test_run_returns_plausible_results(bonder: Bonder, bonder_emulator: EmulatedTool) -> None:
    result = await bonder.run(RECIPE, job_id=4242)
    assert result.job_id == 4242
    assert result.peak_temp_c == pytest.approx(200, rel=0.05)
    assert result.peak_force_kn == pytest.approx(20, rel=0.05)
    assert result.hold_time_s == 600
    assert 0.004 <= result.min_pressure_mbar <= 0.01  # pumped below the setpoint
    st = await bonder.status()
    assert (st.state, st.job_id, st.job_outcome) == (ProcessState.IDLE, 4242, JobOutcome.COMPLETED)
    assert bonder_emulator.setpoints["temp_c"] == 200 and len(bonder_emulator.job_log) == 1


async def test_abort_mid_run(bonder: Bonder, bonder_emulator: EmulatedTool) -> None:
    job = asyncio.create_task(bonder.run(LONG, job_id=77))
    await wait_for_state(bonder_emulator, "EXECUTING")
    await bonder.abort()
    with pytest.raises(JobAborted):
        await job
    st = await bonder.status()
    assert (st.state, st.job_id, st.job_outcome) == (ProcessState.IDLE, 77, JobOutcome.ABORTED)


async def test_door_open_rejects_start_and_keeps_job_id(
    bonder: Bonder, bonder_emulator: EmulatedTool
) -> None:
    await bonder.run(RECIPE, job_id=5)
    bonder_emulator.set_interlock("door_closed", False)
    with pytest.raises(CommandRejected, match="ILLEGAL_VALUE"):
        await bonder.run(RECIPE, job_id=6)
    st = await bonder.status()
    assert st.job_id == 5 and st.interlocks["door_closed"] is False  # job_id reads the tool's
    assert len(bonder_emulator.job_log) == 1


async def test_start_while_busy_is_device_busy(
    bonder: Bonder, bonder_emulator: EmulatedTool
) -> None:
    args = {"job_id": 1, **LONG.setpoints()}
    await bonder.channel.command("start", args)
    with pytest.raises(CommandRejected, match="DEVICE_BUSY"):
        await bonder.channel.command("start", {**args, "job_id": 2})
    await bonder.abort()
    assert (await bonder.status()).job_id == 1


async def test_alarm_mid_run(bonder: Bonder, bonder_emulator: EmulatedTool) -> None:
    bonder_emulator.faults.set(FaultSpec(kind=FaultKind.ALARM, at_fraction=0.3, alarm_id=101))
    with pytest.raises(ToolAlarm) as info:
        await bonder.run(RECIPE)
    assert info.value.alarm_id == 101 and info.value.text == "chuck over-temperature"
    bonder_emulator.faults.clear()
    await bonder.reset()  # clears the alarm; the paused job ends FAILED
    st = await bonder.status()
    assert (st.state, st.alarm, st.job_outcome) == (ProcessState.IDLE, None, JobOutcome.FAILED)


async def test_silence_times_out(
    bonder_server: ModbusToolServer, bonder_profile: ModbusProfile, bonder_emulator: EmulatedTool
) -> None:
    assert bonder_server.live is not None
    async with make_bonder(bonder_profile, bonder_server.live, Timeouts(request_s=0.3)) as drv:
        bonder_emulator.faults.set(FaultSpec(kind=FaultKind.SILENCE))
        t0 = time.perf_counter()
        with pytest.raises(ToolTimeout):
            await drv.status()
        assert time.perf_counter() - t0 < 1.0
        bonder_emulator.faults.clear()
        assert (await drv.status()).state is ProcessState.IDLE


async def test_garbled_reply_is_protocol_error(bonder: Bonder, bonder_emulator: EmulatedTool) -> None:
    bonder_emulator.faults.set(FaultSpec(kind=FaultKind.GARBLE))
    t0 = time.perf_counter()
    with pytest.raises(ProtocolError, match="protocol id"):
        await bonder.status()
    assert time.perf_counter() - t0 < 0.5  # reported at once, not after the request timeout
    bonder_emulator.faults.clear()
    assert (await bonder.status()).state is ProcessState.IDLE


async def test_exception_reply_to_a_read_is_protocol_error(
    bonder: Bonder, bonder_emulator: EmulatedTool
) -> None:
    bonder_emulator.state = "WARMING_UP"  # no code in the profile's state enum: device failure
    with pytest.raises(ProtocolError, match="DEVICE_FAILURE"):
        await bonder.status()
    bonder_emulator.state = "IDLE"
    assert (await bonder.status()).state is ProcessState.IDLE


async def test_delay_then_late_reply_is_ignored(
    bonder_server: ModbusToolServer, bonder_profile: ModbusProfile, bonder_emulator: EmulatedTool
) -> None:
    assert bonder_server.live is not None
    async with make_bonder(bonder_profile, bonder_server.live, Timeouts(request_s=0.3)) as drv:
        bonder_emulator.faults.set(FaultSpec(kind=FaultKind.DELAY, delay_s=0.05))
        t0 = time.perf_counter()
        assert (await drv.status()).state is ProcessState.IDLE
        assert time.perf_counter() - t0 >= 0.05
        bonder_emulator.faults.set(FaultSpec(kind=FaultKind.DELAY, delay_s=0.4))
        with pytest.raises(ToolTimeout):
            await drv.status()
        bonder_emulator.faults.clear()
        await asyncio.sleep(0.2)  # the late reply arrives and must not answer the next request
        st = await drv.status()
        assert st.state is ProcessState.IDLE and st.values["chamber_pressure_mbar"] == 1013.0


async def test_link_drop_then_reconnect(bonder: Bonder, bonder_emulator: EmulatedTool) -> None:
    bonder_emulator.faults.set(FaultSpec(kind=FaultKind.LINK_DROP))
    with pytest.raises(ToolConnectionError):
        await bonder.status()
    bonder_emulator.faults.clear()
    assert (await bonder.status()).state is ProcessState.IDLE


async def test_reconnect_after_restart(
    bonder_server: ModbusToolServer, bonder_profile: ModbusProfile, bonder_emulator: EmulatedTool
) -> None:
    live = bonder_server.live
    assert live is not None
    timeouts = Timeouts(connect_s=0.3, request_s=0.3, backoff_initial_s=0.02, backoff_max_s=0.1)
    async with make_bonder(bonder_profile, live, timeouts) as drv:
        assert (await drv.status()).state is ProcessState.IDLE
        await bonder_server.stop()
        with pytest.raises(ToolConnectionError):
            await drv.status()
        again = ModbusToolServer(bonder_emulator, bonder_profile, live)
        assert await again.start() == live
        try:
            assert (await drv.status()).state is ProcessState.IDLE
        finally:
            await again.stop()


async def run_mbpoll(*args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        "mbpoll", "-a", "1", "-0", "-t", "3", "-r", "0", "-c", "1", "-1", "-o", "2", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 10)
    assert proc.returncode == 0, err.decode()
    return out.decode()


@pytest.mark.mbpoll
@pytest.mark.skipif(shutil.which("mbpoll") is None, reason="mbpoll not installed (apt install mbpoll)")
async def test_mbpoll_reads_idle_state(bonder_server: ModbusToolServer) -> None:
    assert bonder_server.live is not None
    out = await run_mbpoll("-m", "tcp", "-p", str(bonder_server.live.port), "127.0.0.1")  # type: ignore[union-attr]
    assert "[0]: \t1" in out  # input register 0 = state = IDLE (code 1)


# --- Modbus RTU over a pty ----------------------------------------------------------------------
async def test_rtu_status_and_run(bonder_rtu: Bonder) -> None:
    assert (await bonder_rtu.status()).state is ProcessState.IDLE
    result = await bonder_rtu.run(RECIPE, job_id=9)
    assert result.peak_temp_c == pytest.approx(200, rel=0.05) and result.hold_time_s == 600


async def test_rtu_garbled_crc_is_protocol_error(
    bonder_rtu: Bonder, bonder_emulator: EmulatedTool
) -> None:
    bonder_emulator.faults.set(FaultSpec(kind=FaultKind.GARBLE))
    with pytest.raises(ProtocolError, match="CRC"):
        await bonder_rtu.status()
    bonder_emulator.faults.clear()
    assert (await bonder_rtu.status()).state is ProcessState.IDLE


@pytest.mark.mbpoll
@pytest.mark.skipif(shutil.which("mbpoll") is None, reason="mbpoll not installed (apt install mbpoll)")
async def test_mbpoll_rtu_reads_idle_state(bonder_rtu_server: ModbusToolServer) -> None:
    live = bonder_rtu_server.live
    assert live is not None
    out = await run_mbpoll("-m", "rtu", "-b", str(live.baud), "-P", "none", live.device)  # type: ignore[union-attr]
    assert "[0]: \t1" in out


async def test_rtu_reconnect_after_restart(
    bonder_rtu_server: ModbusToolServer, bonder_profile: ModbusProfile, bonder_emulator: EmulatedTool
) -> None:
    live = bonder_rtu_server.live
    assert live is not None
    timeouts = Timeouts(connect_s=0.3, request_s=0.5, backoff_initial_s=0.02, backoff_max_s=0.1)
    async with make_bonder(bonder_profile, live, timeouts) as drv:
        assert (await drv.status()).state is ProcessState.IDLE
        await bonder_rtu_server.stop()
        with pytest.raises(ToolConnectionError):
            await drv.status()
        again = ModbusToolServer(bonder_emulator, bonder_profile, live, run_dir=bonder_rtu_server.run_dir)
        assert await again.start() == live  # same symlink, new pty behind it
        try:
            assert (await drv.status()).state is ProcessState.IDLE
        finally:
            await again.stop()
