"""GEM (SEMI E30) tools over HSMS: a kind's variables as SVIDs, DVIDs and ECIDs, its commands as remote
commands, its events as CEIDs with the reports the host defines, as data.

What a bench engineer copies from a tool's GEM manual: each variable's id, SECS-II format and unit;
the CEIDs the tool raises and which variables their reports carry; the ALIDs (`alarms:`); the RCMD
names and their CPNAMEs; how a process program is sent; the processing-state codes (`enums.state`).

Conventions shared by driver and emulator (sim_tools/servers/gem.py):
- an `svid` variable is read with S1F3, an `ecid` one with S2F13; a `dvid` is only valid in an event
  report (S6F11), so the driver gives the value of the last report that carried it;
- events are named by what happens (`job_ended`, ...): the tool raises the CEID when it happens, the
  host links it to report `rptid`, and a job's end wakes the driver instead of its next poll;
- a command with `program:` fields is a process program download (S7F3, body `name=value` lines)
  followed by the remote command with the PPID as parameter `process_programs.ppid_param`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from pydantic import Field, model_validator

from drivers.profiles.base import ProfileBase, StrictModel, check_command_args, check_enum_refs

SecsFormat = Literal["U1", "U2", "U4", "U8", "I1", "I2", "I4", "I8", "F4", "F8", "BOOLEAN", "A"]
INTEGER_RANGE: dict[str, tuple[int, int]] = {
    "U1": (0, 2**8 - 1), "U2": (0, 2**16 - 1), "U4": (0, 2**32 - 1), "U8": (0, 2**64 - 1),
    "I1": (-(2**7), 2**7 - 1), "I2": (-(2**15), 2**15 - 1), "I4": (-(2**31), 2**31 - 1),
    "I8": (-(2**63), 2**63 - 1),
}
VID = Field(default=None, ge=1, le=2**32 - 1)
EventName = Literal["job_started", "job_ended", "state_changed", "alarm_changed", "interlock_changed"]
# E30 control-state codes (the ControlState SV)
CONTROL_STATES = {"EQUIPMENT_OFFLINE": 1, "ATTEMPT_ONLINE": 2, "HOST_OFFLINE": 3, "ONLINE_LOCAL": 4,
                  "ONLINE_REMOTE": 5}
ControlState = Literal["equipment_offline", "host_offline", "online_local", "online_remote"]


class HsmsVariable(StrictModel):
    """One variable: exactly one of svid (status), dvid (data, event reports only), ecid (constant)."""

    svid: int | None = VID
    dvid: int | None = VID
    ecid: int | None = VID
    format: SecsFormat
    enum: str | None = Field(default=None, description="enum table; the item carries the code (or the "
                                                       "member name in an A item)")
    unit: str = Field(default="", max_length=32)
    default: float | int | bool | str | None = Field(default=None, description="ecid: initial value")
    description: str = ""

    @model_validator(mode="after")
    def _one_id(self) -> HsmsVariable:
        ids = [n for n in ("svid", "dvid", "ecid") if getattr(self, n) is not None]
        if len(ids) != 1:
            raise ValueError(f"give exactly one of svid, dvid, ecid (got {ids or 'none'})")
        if self.enum is not None and self.format in ("F4", "F8", "BOOLEAN"):
            raise ValueError(f"enum {self.enum!r} needs an integer or A format, not {self.format}")
        return self

    @property
    def vid(self) -> int:
        return self.svid or self.dvid or self.ecid or 0

    @property
    def role(self) -> Literal["sv", "dv", "ec"]:
        return "sv" if self.svid is not None else "dv" if self.dvid is not None else "ec"


class HsmsCommand(StrictModel):
    """A contract command as an S2F41 remote command: RCMD and CPNAME -> variable."""

    rcmd: str = Field(min_length=1, max_length=40, pattern=r"^[\x21-\x7e]+$")
    params: dict[str, str] = Field(default_factory=dict, description="CPNAME -> variable (CPVAL)")
    program: list[str] = Field(default_factory=list, description=(
        "variables sent first as a process program (S7F3); empty: all go as parameters"))
    text_values: bool = Field(default=False, description="send every CPVAL as an A item (text)")


class HsmsEvent(StrictModel):
    ceid: int = Field(ge=1, le=2**32 - 1)
    rptid: int = Field(ge=1, le=2**32 - 1, description="the report the host defines for this event")
    variables: list[str] = Field(min_length=1, description="what the report carries (svid or dvid)")


class ProcessPrograms(StrictModel):
    ppid: str = Field(default="{kind}-{job_id}", description="PPID template: {kind}, {job_id}")
    ppid_param: str = Field(default="PPID", min_length=1, max_length=40)
    max_body_bytes: int = Field(default=65536, ge=64, le=16 * 1024 * 1024)


class GemSettings(StrictModel):
    mdln: str = Field(default="", max_length=20, description="equipment model type (S1F2/S1F14)")
    softrev: str = Field(default="", max_length=20, description="software revision (S1F2/S1F14)")
    initial_control: ControlState = Field(default="host_offline", description=(
        "the emulator's control state at power-on; the driver asks for online with S1F17"))
    trace_period_s: float = Field(default=0.0, ge=0, le=3600, description=(
        "0: no trace; else the driver starts an S2F23 trace of the process values at this period "
        "(tool seconds)"))
    trid: int = Field(default=1, ge=1, le=2**32 - 1)


class HsmsProfile(ProfileBase):
    transport: Literal["hsms"]
    gem: GemSettings = Field(default_factory=GemSettings)
    variables: dict[str, HsmsVariable]
    commands: dict[str, HsmsCommand]
    events: dict[EventName, HsmsEvent] = Field(default_factory=dict)
    process_programs: ProcessPrograms = Field(default_factory=ProcessPrograms)

    @model_validator(mode="after")
    def _check(self) -> HsmsProfile:
        check_enum_refs(self, {n: v.enum for n, v in self.variables.items()})
        check_command_args(self, set(self.variables))
        _unique(((n, v.vid) for n, v in self.variables.items()), "variables", "id")
        _unique(((n, e.ceid) for n, e in self.events.items()), "events", "ceid")
        _unique(((n, e.rptid) for n, e in self.events.items()), "events", "rptid")
        _unique(((n, c.rcmd) for n, c in self.commands.items()), "commands", "rcmd")
        for event_name, event in self.events.items():
            for var in event.variables:
                spec = self.variables.get(var)
                if spec is None or spec.role == "ec":
                    raise ValueError(f"events.{event_name}.variables: {var!r} is not a declared svid or dvid")
        for name, cmd in self.commands.items():
            if self.process_programs.ppid_param in cmd.params:
                raise ValueError(f"commands.{name}.params: {self.process_programs.ppid_param} is the PPID "
                                 "the driver sets itself (process_programs.ppid_param)")
            if cmd.program and "job_id" in cmd.program:
                raise ValueError(f"commands.{name}.program: job_id goes as a parameter, not in the program")
        return self

    def command_args(self, command: str) -> list[str]:
        cmd = self.commands[command]
        return [*cmd.params.values(), *cmd.program]

    def by_role(self, names: list[str] | tuple[str, ...], role: str) -> list[str]:
        return [n for n in names if self.variables[n].role == role]


def _unique(pairs: Iterable[tuple[str, object]], section: str, what: str) -> None:
    seen: dict[object, str] = {}
    for name, key in pairs:
        if key in seen:
            raise ValueError(f"{section}.{name}.{what}: {key} is also {seen[key]}'s")
        seen[key] = name
