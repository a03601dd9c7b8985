"""The waferline driver drives a secsgem GemEquipmentHandler configured like a bonder (issue 13,
section 4): a real GEM stack that is not ours, reached by a bench profile (bonder-hsms with every
CPVAL as text, as secsgem takes them, and no trace). Establish communication, online, the driver's
own report definitions, status by S1F3, a job started by S2F41 START (secsgem answers HCACK 4, done
later) whose end arrives as an S6F11, the result read back, an S5F1 alarm mapped to the contract's
alarm and class, and a remote command the tool does not know refused with HCACK 1 by name."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import secsgem.common
import secsgem.gem
import secsgem.hsms
import secsgem.secs.variables as sv
import yaml
from secsgem.common.state_machine import WrongSourceStateError

from drivers.errors import CommandRejected
from drivers.factory import make_tool
from drivers.line import LineConfig, check_profiles
from drivers.profiles import HsmsProfile, load_profile
from drivers.profiles.loader import PROFILE_DIR
from drivers.transports.gem import HsmsChannel
from tests.test_any_kind_any_transport import example_recipe

SECS_TYPE = {"U1": sv.U1, "U2": sv.U2, "U4": sv.U4, "F8": sv.F8, "BOOLEAN": sv.Boolean, "A": sv.String}
RESULTS = {"peak_temp_c": 180.4, "peak_force_kn": 19.9, "hold_time_s": 1800.0, "min_pressure_mbar": 0.009}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SecsgemBonder:
    """A secsgem GEM equipment that behaves like a bonder: START runs a job for `job_s` seconds."""

    def __init__(self, profile: HsmsProfile, port: int, job_s: float = 0.3) -> None:
        settings = secsgem.hsms.HsmsSettings(address="127.0.0.1", port=port,
                                             connect_mode=secsgem.hsms.HsmsConnectMode.PASSIVE,
                                             device_type=secsgem.common.DeviceType.EQUIPMENT)
        self.h = h = secsgem.gem.GemEquipmentHandler(settings)
        h._mdln, h._softrev = "SECSGEM-BOND", "0.3.0"
        self.profile, self.job_s = profile, job_s
        self.vid = {n: v.vid for n, v in profile.variables.items()}
        codes = {"state": profile.enum_table("state"), "job_outcome": profile.enum_table("outcome")}
        self.codes = codes
        for name, var in profile.variables.items():
            kind = SECS_TYPE[var.format]
            if var.role == "sv":
                h.status_variables[var.vid] = secsgem.gem.StatusVariable(var.vid, name, var.unit, kind, False)
            elif var.role == "dv":
                h.data_values[var.vid] = secsgem.gem.DataValue(var.vid, name, kind, False)
        self.set(state=codes["state"]["IDLE"], alarm_id=0, job_id=0, job_outcome=0, boot_id=77,
                 door_closed=True, vacuum_ok=True, cooling_water_ok=True, emo_ok=True, chuck_temp_c=25.0,
                 applied_force_kn=0.0, chamber_pressure_mbar=1013.0, clock="2026120500000000",
                 control_state=5,
                 **dict.fromkeys(RESULTS, 0.0))
        for event in profile.events.values():
            h.collection_events[event.ceid] = secsgem.gem.CollectionEvent(
                event.ceid, f"ce{event.ceid}", [])
        start = profile.commands["start"]
        h.remote_commands["START"] = secsgem.gem.RemoteCommand("START", "start a job", list(start.params),
                                                               profile.events["job_started"].ceid)
        h.alarms[900] = secsgem.gem.Alarm(900, "process", "process alarm", 4,
                                          profile.events["alarm_changed"].ceid,
                                          profile.events["alarm_changed"].ceid)
        h.callbacks.rcmd_START = self._start
        self.started: list[dict[str, Any]] = []

    def set(self, **values: Any) -> None:
        for name, value in values.items():
            vid = self.vid[name]
            store = self.h.status_variables if vid in self.h.status_variables else self.h.data_values
            store[vid].value = value

    def _start(self, **params: Any) -> None:
        self.started.append(params)
        job = int(params["JOB_ID"])
        start = self.profile.commands["start"].params
        for cp, var in start.items():  # the setpoint DVs the job_started report carries
            if var != "job_id":
                value = params[cp]
                table = self.profile.enum_table(var) if self.profile.variables[var].enum else None
                self.set(**{var: table[value] if table else float(value)})
        self.set(state=self.codes["state"]["EXECUTING"], job_id=job, job_outcome=1)
        threading.Timer(self.job_s, self._finish).start()

    def _finish(self) -> None:
        self.set(state=self.codes["state"]["IDLE"], job_outcome=2, **RESULTS)
        self.h.trigger_collection_events([self.profile.events["job_ended"].ceid])


@pytest.fixture
def bench(tmp_path: Path) -> Iterator[tuple[SecsgemBonder, LineConfig]]:
    data = yaml.safe_load((PROFILE_DIR / "bonder-hsms.yaml").read_text())
    data["gem"]["trace_period_s"] = 0  # secsgem 0.3 has no S2F23 trace
    data["commands"]["start"]["text_values"] = True  # its CPVAL takes no floats
    for var in data["variables"].values():  # secsgem keeps 1001-1005 for its own E30 SVs (Clock, ...)
        for role in ("svid", "dvid", "ecid"):
            if role in var:
                var[role] += 20000
    path = tmp_path / "bonder-secsgem.yaml"
    path.write_text(yaml.safe_dump(data))
    profile = load_profile(path)
    assert isinstance(profile, HsmsProfile)
    port = free_port()
    tool = SecsgemBonder(profile, port)
    tool.h.enable()
    line = LineConfig.model_validate({"name": "bench", "time_scale": 1, "tools": [
        {"name": "bonder1", "kind": "bonder", "profile": str(path), "emulated": False, "poll_interval_s": 5,
         "address": {"transport": "hsms", "port": port, "timers": {"t3": 3, "select_delay_s": 0.5}}}]})
    check_profiles(line)
    yield tool, line
    stop = threading.Thread(target=_disable, args=(tool.h,), daemon=True)
    stop.start()
    stop.join(10)  # secsgem's server thread can stall its own disable; never hold the session for it


def _disable(handler: secsgem.gem.GemEquipmentHandler) -> None:
    with contextlib.suppress(WrongSourceStateError):
        handler.disable()


# secsgem's server thread may re-listen on the socket its disable() just closed (EBADF, at teardown only)
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
async def test_driver_runs_a_job_on_secsgem_equipment(bench: tuple[SecsgemBonder, LineConfig]) -> None:
    equipment, line = bench
    async with make_tool(line.tool("bonder1"), line) as tool:
        channel = tool.channel
        assert isinstance(channel, HsmsChannel)
        assert channel.identity == ("SECSGEM-BOND", "0.3.0")
        before = await tool.status()
        assert before.ready and before.boot_id == 77
        # poll interval 5 s: a job of 0.3 s that ends within ~1 s ended by its S6F11, not by a poll
        result = await tool.run(example_recipe("bonder"), job_id=4242)
        assert tool.polls <= 3, tool.polls
        assert channel.events_received == {"job_started": 1, "job_ended": 1}
        assert result.peak_temp_c == pytest.approx(RESULTS["peak_temp_c"])
        sent = equipment.started[0]
        assert sent["JOB_ID"] == "4242" and float(sent["TEMP_C"]) == example_recipe("bonder").temp_c

        # secsgem's set_alarm sends S5F1 without the W-bit yet waits T3 for an answer: send it plainly
        equipment.set(alarm_id=900)
        equipment.h.protocol.send_stream_function(equipment.h.stream_function(5, 1)(
            {"ALCD": 0x84, "ALID": 900, "ALTX": "process alarm"}))
        for _ in range(100):
            if channel.alarm_reports:
                break
            await asyncio.sleep(0.02)
        status = await tool.status()
        assert status.alarm is not None and (status.alarm.id, status.alarm.alarm_class) == (900, "process")
        assert channel.alarm_reports[-1][1:] == (900, True, "process alarm")

        with pytest.raises(CommandRejected, match=r"RESET: HCACK 1 \(command does not exist\)"):
            await channel.command("reset")

