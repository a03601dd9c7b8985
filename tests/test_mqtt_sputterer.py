"""Sputterer over MQTT: the Sputterer driver against the emulator through real brokers (amqtt, mosquitto)."""

from __future__ import annotations

import asyncio
import json
import math
import shutil
import subprocess
from pathlib import Path

import aiomqtt
import pytest

from drivers.addresses import MqttAddress
from drivers.channel import Timeouts
from drivers.errors import (
    CommandRejected,
    JobAborted,
    ProtocolError,
    ToolAlarm,
    ToolConnectionError,
    ToolOffline,
    ToolTimeout,
)
from drivers.kinds.sputterer import Sputterer, SputtererRecipe
from drivers.profiles import MqttProfile
from drivers.tool import JobOutcome, ProcessState, ToolStatus
from drivers.transports.mqtt import NODELAY, MqttChannel
from sim_tools.broker import EmbeddedBroker, MosquittoBroker
from sim_tools.clock import VirtualClock
from sim_tools.faults import FaultKind, FaultSpec
from sim_tools.model import EmulatedTool
from sim_tools.physics.sputterer import SputtererPhysics
from sim_tools.servers.mqtt import MqttToolServer
from tests.fixtures.common import free_port
from tests.fixtures.mqtt import (
    BROKERS,
    MOSQUITTO_MISSING,
    Broker,
    SputtererFactory,
    SputtererRig,
    eventually,
    next_on,
)

BOTH_BROKERS = pytest.mark.parametrize("broker", BROKERS, indirect=True)
CU_500 = SputtererRecipe(material="Cu", thickness_nm=500, power_w=2000)
LONG = SputtererRecipe(material="Ti", thickness_nm=3000, power_w=100)  # 20000 tool s = 1 s wall


@BOTH_BROKERS
async def test_status_of_idle_tool(sputterer: Sputterer) -> None:
    st = await sputterer.status()
    assert (st.tool, st.kind, st.state, st.job_outcome) == (
        "sputter1", "sputterer", ProcessState.IDLE, JobOutcome.NONE
    )
    assert st.alarm is None and st.ready
    assert st.interlocks == dict.fromkeys(Sputterer.interlock_inputs, True)
    assert st.values == {"chamber_pressure_torr": 760.0, "deposited_nm": 0.0}


@BOTH_BROKERS
async def test_full_run_gives_physical_results(sputterer: Sputterer) -> None:
    seen: list[ToolStatus] = []

    async def monitor(st: ToolStatus) -> None:
        seen.append(st)

    result = await sputterer.run(CU_500, job_id=4242, monitor=monitor)
    # Cu sputters at 4 nm/s per kW: 8 nm/s at 2 kW, so 500 nm take 62.5 tool s.
    assert result.job_id == 4242
    assert result.deposition_time_s == pytest.approx(62.5, rel=0.01)
    assert result.film_thickness_nm == pytest.approx(500, rel=0.05)
    reached = result.base_pressure_reached_torr
    assert 0.5 * CU_500.base_pressure_torr <= reached <= 0.9 * CU_500.base_pressure_torr
    assert result.pumpdown_time_s == pytest.approx(math.log10(760 / reached) * 60, rel=0.01)
    assert seen and seen[-1].job_outcome is JobOutcome.COMPLETED  # states: see the status topic test
    st = await sputterer.status()
    assert (st.state, st.job_outcome, st.job_id) == (ProcessState.IDLE, JobOutcome.COMPLETED, 4242)


async def test_status_topic_follows_every_state_change(
    sputterer: Sputterer, sputterer_rig: SputtererRig, broker: Broker
) -> None:
    topic = sputterer_rig.profile.topics.render("status", sputterer_rig.address.prefix)
    async with aiomqtt.Client(broker.host, broker.port, socket_options=NODELAY) as watcher:
        await watcher.subscribe(topic, qos=1)
        states = [(await next_on(watcher, topic))["state"]]  # the retained one
        await sputterer.run(CU_500)
        while states[-1] != "IDLE" or len(states) < 4:
            states.append((await next_on(watcher, topic))["state"])
    assert states[:1] == ["IDLE"]
    assert "SETUP" in states and "EXECUTING" in states
    assert states.index("SETUP") < states.index("EXECUTING") < len(states) - 1


@BOTH_BROKERS
async def test_independent_client_reads_retained_status(
    sputterer_rig: SputtererRig, broker: Broker
) -> None:
    exe = shutil.which("mosquitto_sub")
    if exe is None:
        pytest.skip("mosquitto_sub not installed (mosquitto-clients, installed by CI via apt)")
    topic = sputterer_rig.profile.topics.render("status", sputterer_rig.address.prefix)
    argv = [exe, "-h", broker.host, "-p", str(broker.port), "-t", topic, "-C", "1", "-W", "5"]
    done = await asyncio.to_thread(subprocess.run, argv, capture_output=True, timeout=10)
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    assert status["state"] == "IDLE"
    assert set(status) == set(sputterer_rig.profile.variables)


async def test_abort_mid_run(sputterer: Sputterer) -> None:
    async def abort_when_depositing(st: ToolStatus) -> None:
        if st.state is ProcessState.EXECUTING:
            await sputterer.abort()

    with pytest.raises(JobAborted):
        await sputterer.run(LONG, monitor=abort_when_depositing)
    st = await sputterer.status()
    assert (st.state, st.job_outcome) == (ProcessState.IDLE, JobOutcome.ABORTED)


async def test_start_refused_with_door_open(sputterer: Sputterer, sputterer_rig: SputtererRig) -> None:
    sputterer_rig.emu.set_interlock("door_closed", False)
    assert not (await sputterer.status()).ready
    with pytest.raises(CommandRejected, match="interlock door_closed not made"):
        await sputterer.run(CU_500)
    assert sputterer_rig.emu.job_log == []


async def test_recipe_refused_by_tool_carries_its_text(sputterer: Sputterer) -> None:
    args = {**CU_500.setpoints(), "job_id": 7, "material": "Au"}
    with pytest.raises(CommandRejected, match=r"start refused: 6 recipe material"):
        await sputterer.channel.command("start", args)


async def test_alarm_mid_run_then_reset(sputterer: Sputterer, sputterer_rig: SputtererRig) -> None:
    sputterer_rig.emu.faults.set(FaultSpec(kind=FaultKind.ALARM, alarm_id=202, at_fraction=0.5))
    with pytest.raises(ToolAlarm) as info:
        await sputterer.run(CU_500)
    assert (info.value.alarm_id, info.value.text) == (202, "target arcing")
    assert (await sputterer.status()).state is ProcessState.PAUSE
    sputterer_rig.emu.faults.clear()
    await sputterer.reset()
    st = await sputterer.status()
    assert (st.state, st.job_outcome, st.alarm) == (ProcessState.IDLE, JobOutcome.FAILED, None)


async def test_silent_tool_times_out(make_sputterer: SputtererFactory, sputterer_rig: SputtererRig) -> None:
    tool = await make_sputterer(Timeouts(request_s=0.3))
    sputterer_rig.emu.faults.set(FaultSpec(kind=FaultKind.SILENCE))
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    with pytest.raises(ToolTimeout):
        await tool.status()
    assert 0.25 < loop.time() - t0 < 1.0
    sputterer_rig.emu.faults.clear()
    assert (await tool.status()).state is ProcessState.IDLE


async def test_late_reply_is_not_taken_for_the_next_one(
    make_sputterer: SputtererFactory, sputterer_rig: SputtererRig
) -> None:
    tool = await make_sputterer(Timeouts(request_s=0.3))
    sputterer_rig.emu.faults.set(FaultSpec(kind=FaultKind.DELAY, delay_s=0.4))
    with pytest.raises(ToolTimeout):
        await tool.status()
    sputterer_rig.emu.faults.clear()
    await asyncio.sleep(0.15)  # the late reply arrives now and must be dropped
    assert (await tool.status()).state is ProcessState.IDLE


async def test_garbled_reply_is_protocol_error(sputterer: Sputterer, sputterer_rig: SputtererRig) -> None:
    sputterer_rig.emu.faults.set(FaultSpec(kind=FaultKind.GARBLE))
    with pytest.raises(ProtocolError, match="garbled"):
        await sputterer.status()
    sputterer_rig.emu.faults.clear()
    assert (await sputterer.status()).state is ProcessState.IDLE


@BOTH_BROKERS
async def test_link_drop_last_will_reports_offline(
    make_sputterer: SputtererFactory, sputterer_rig: SputtererRig
) -> None:
    tool = await make_sputterer(Timeouts(request_s=3.0, connect_s=1.0))
    sputterer_rig.emu.faults.set(FaultSpec(kind=FaultKind.LINK_DROP))
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    with pytest.raises(ToolOffline):
        await tool.status()
    assert loop.time() - t0 < 1.5  # told by the last will, not by the 3 s request timeout
    sputterer_rig.emu.faults.clear()
    assert (await eventually(tool.status)).state is ProcessState.IDLE
    assert sputterer_rig.server.connections >= 2


@BOTH_BROKERS
async def test_tool_power_off_then_back(sputterer: Sputterer, sputterer_rig: SputtererRig) -> None:
    await sputterer_rig.server.stop()
    with pytest.raises(ToolOffline):
        await sputterer.status()
    await sputterer_rig.server.start()
    assert (await eventually(sputterer.status)).state is ProcessState.IDLE


async def test_concurrent_requests_are_matched(
    sputterer: Sputterer, make_sputterer: SputtererFactory
) -> None:
    other = await make_sputterer()
    results = await asyncio.gather(
        *(t.status() for t in [sputterer, other] * 10),
        *(sputterer.channel.read(["job_id", "material"]) for _ in range(10)),
    )
    assert all(isinstance(r, ToolStatus) for r in results[:20])
    assert all(r == {"job_id": 0, "material": "Al"} for r in results[20:])


async def test_raw_client_sees_documented_wire_format(
    sputterer_rig: SputtererRig, broker: Broker
) -> None:
    prefix = sputterer_rig.address.prefix
    async with aiomqtt.Client(broker.host, broker.port, socket_options=NODELAY) as raw:
        await raw.subscribe(f"{prefix}/reply/raw", qos=1)
        replies = []
        for rid, cmd, args in [
            ("a", "read", {"names": ["state", "power_w"]}),
            ("b", "explode", {}),
            ("c", "read", {"names": ["nope"]}),
        ]:
            req = {"id": rid, "cmd": cmd, "args": args, "reply_to": f"{prefix}/reply/raw"}
            await raw.publish(f"{prefix}/cmd", json.dumps(req), qos=1)
            replies.append(await next_on(raw, f"{prefix}/reply/raw"))
    assert replies[0] == {"id": "a", "ok": True, "values": {"state": "IDLE", "power_w": 2000.0}}
    assert replies[1] == {"id": "b", "ok": False, "error": "2 unknown command explode"}
    assert replies[2]["ok"] is False and "unknown variable" in replies[2]["error"]


@pytest.mark.parametrize("kind", ["amqtt", pytest.param("mosquitto", marks=pytest.mark.mosquitto)])
async def test_broker_outage_then_recovery(
    kind: str, clock: VirtualClock, sputterer_profile: MqttProfile, tmp_path: Path
) -> None:
    if kind == "mosquitto" and not MosquittoBroker.available():
        pytest.skip(MOSQUITTO_MISSING)
    port = free_port()

    def new_broker() -> EmbeddedBroker | MosquittoBroker:
        return EmbeddedBroker(port=port) if kind == "amqtt" else MosquittoBroker(tmp_path, port=port)

    broker = new_broker()
    await broker.start()
    emu = EmulatedTool("sputter1", SputtererPhysics(), clock)
    address = MqttAddress(prefix="waferline/outage/sputter1", port=port)
    server = MqttToolServer(emu, sputterer_profile, address)
    timeouts = Timeouts(connect_s=0.5, request_s=0.5)
    channel = MqttChannel("sputter1", sputterer_profile, address, timeouts)
    tool = Sputterer("sputter1", channel, time_scale=20000, poll_interval_s=0.002)
    try:
        await server.start()
        await tool.connect()
        assert (await tool.status()).state is ProcessState.IDLE
        await broker.stop()
        with pytest.raises(ToolConnectionError) as info:
            await tool.status()
        assert not isinstance(info.value, ToolOffline)
        broker = new_broker()
        await broker.start()
        # Requests sent before the tool is back on the new broker go unanswered: ToolTimeout.
        st = await eventually(tool.status, errors=(ToolConnectionError, ToolTimeout))
        assert st.state is ProcessState.IDLE
    finally:
        await tool.close()
        await server.stop()
        await emu.close()
        await broker.stop()
