"""secsgem's GEM host drives an emulated tool over a real HSMS socket (issue 13, section 4): establish
communication, online, status (S1F3), event reports it defines itself (S2F33/35/37 -> S6F11), a
remote command START with the recipe as parameters, an alarm (S5F1), and a START refused in online
local (HCACK 2). secsgem is thread-based, so its calls run in a worker thread while the emulator runs
on the test's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import pytest
import secsgem.common
import secsgem.gem
import secsgem.hsms
import yaml
from secsgem.common.state_machine import WrongSourceStateError

from drivers.kinds import KINDS
from drivers.line import LineConfig, check_profiles
from drivers.profiles import HsmsProfile, load_profile
from sim_tools.line import EmulatedLine
from sim_tools.servers.gem import GemToolServer
from tests.test_any_kind_any_transport import RECIPES

T = TypeVar("T")


async def call(fn: Callable[..., T], *args: Any) -> T:
    return await asyncio.to_thread(fn, *args)


@pytest.fixture
async def gem_line() -> AsyncIterator[tuple[EmulatedLine, GemToolServer, int]]:
    config = LineConfig.model_validate({"name": "gemhost", "time_scale": 2000, "tools": [
        {"name": "bonder1", "kind": "bonder", "profile": "bonder-hsms",
         "address": {"transport": "hsms", "port": 0, "session": 0, "timers": {"t3": 3}}}]})
    check_profiles(config)
    async with EmulatedLine(config) as line:
        server = line.servers["bonder1"]
        assert isinstance(server, GemToolServer)
        yield line, server, server.hsms.address.port


@pytest.fixture
async def host(
    gem_line: tuple[EmulatedLine, GemToolServer, int],
) -> AsyncIterator[secsgem.gem.GemHostHandler]:
    settings = secsgem.hsms.HsmsSettings(address="127.0.0.1", port=gem_line[2],
                                         connect_mode=secsgem.hsms.HsmsConnectMode.ACTIVE,
                                         device_type=secsgem.common.DeviceType.HOST, session_id=0)
    handler = secsgem.gem.GemHostHandler(settings)
    handler.enable()
    assert await call(handler.waitfor_communicating, 10), "secsgem host never reached COMMUNICATING"
    yield handler
    with contextlib.suppress(WrongSourceStateError):
        await call(handler.disable)


def decode(host: secsgem.gem.GemHostHandler, stream: int, function: int, data: Any = None) -> Any:
    message = host.stream_function(stream, function)(data) if data is not None else host.stream_function(
        stream, function)()
    return host.settings.streams_functions.decode(host.send_and_waitfor_response(message)).get()


async def test_secsgem_host_drives_emulated_tool(
    gem_line: tuple[EmulatedLine, GemToolServer, int], host: secsgem.gem.GemHostHandler
) -> None:
    line, server, _ = gem_line
    model = line.tools["bonder1"]
    profile = load_profile("bonder-hsms")
    assert isinstance(profile, HsmsProfile)
    sv = {n: v.vid for n, v in profile.variables.items()}
    assert server.comm_state == "COMMUNICATING"
    # control: host offline at power-on, where E30 answers S1F1 with an abort (S1F0); online remote on S1F17
    assert server.control_state == "HOST_OFFLINE"
    assert await call(decode, host, 1, 1) is None
    assert await call(host.go_online) == 0
    assert server.control_state == "ONLINE_REMOTE"
    assert await call(decode, host, 1, 1) == ["WL-BONDER", "1.0"]
    assert await call(decode, host, 1, 3, [sv["control_state"]]) == [5]
    status = await call(decode, host, 1, 3, [sv["state"], sv["door_closed"], sv["chuck_temp_c"]])
    assert status[0] == 1 and status[1] is True and status[2] == pytest.approx(25.0)
    assert await call(decode, host, 1, 3, [424242]) == [[]]  # unknown SVID: an empty item (E5)

    # the host's own report for the job's end
    received: list[dict[str, Any]] = []
    done = threading.Event()

    def on_event(data: dict[str, Any]) -> None:
        received.append(data)
        if int(data["ceid"].get()) == profile.events["job_ended"].ceid:
            done.set()

    host.events.collection_event_received += on_event
    ended = profile.events["job_ended"].ceid
    carried = [sv["job_id"], sv["job_outcome"], sv["peak_temp_c"]]
    await call(host.subscribe_collection_event, ended, carried, 7)

    recipe = yaml.safe_load((RECIPES / "bonder.yaml").read_text())
    KINDS["bonder"].recipe_model.model_validate(recipe)
    params = [["JOB_ID", 4711]] + [[k.upper(), str(v)] for k, v in recipe.items()]
    reply = await call(host.send_remote_command, "START", params)
    assert reply.HCACK.get() == 0, reply
    assert await call(done.wait, 20), f"no job_ended S6F11; got {received}"
    values = {int(v["dvid"]): v["value"] for v in received[-1]["values"]}
    assert values[sv["job_id"]] == 4711 and values[sv["job_outcome"]] == 2  # COMPLETED
    assert values[sv["peak_temp_c"]] == pytest.approx(float(model.results["peak_temp_c"]))
    assert model.job_log == [4711]

    # an alarm: S5F1 with the profile's text, set then cleared
    alarms: list[dict[str, Any]] = []
    host.events.alarm_received += alarms.append
    model.raise_alarm(900)
    model.alarm_id = 0
    model._notify()
    for _ in range(100):
        if len(alarms) >= 2:
            break
        await asyncio.sleep(0.02)
    assert [(int(a["alid"].get()), int(a["code"].get()) & 0x80) for a in alarms] == [(900, 0x80), (900, 0)]
    assert alarms[0]["text"].get().strip() == "process alarm"

    # online local: the operator has the tool, a START is refused with HCACK 2
    assert await call(host.go_offline) == 0
    server.remote = False
    assert await call(host.go_online) == 0
    assert server.control_state == "ONLINE_LOCAL"
    refused = await call(host.send_remote_command, "START", [["JOB_ID", 4712], *params[1:]])
    assert refused.HCACK.get() == 2
    assert model.job_log == [4711]
