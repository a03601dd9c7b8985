"""What every profile has, whatever the transport: kind, enum tables, alarm texts, commands.

Values on the neutral side of a channel are plain Python: float, int, bool, or str for enum members.
Enum tables map member names to wire codes; text transports (serial, MQTT) send the names.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Value = bool | int | float | str

# Wire codes of the contract's own enums. Profiles may extend the tables but must keep these codes,
# so a bench engineer reading a register with mbpoll sees the same numbers on every tool.
CONTRACT_ENUMS: dict[str, dict[str, int]] = {
    "state": {"INIT": 0, "IDLE": 1, "SETUP": 2, "READY": 3, "EXECUTING": 4, "PAUSE": 5},
    "outcome": {"NONE": 0, "RUNNING": 1, "COMPLETED": 2, "ABORTED": 3, "FAILED": 4},
}

ValueType = Literal["float", "int", "bool", "enum", "str"]
# ISA-18.2 / SEMI E30 alarm classes: what the controller does when the alarm is set.
#   safety:  the process is no longer safe (door opened, EMO, interlock lost): abort, never bypassed
#   process: the job is in trouble (arcing, over-temperature): hold for the operator
#   warning: worth telling (consumable low): journaled, the job goes on
AlarmClass = Literal["safety", "process", "warning"]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


class AlarmSpec(StrictModel):
    """One alarm of the tool: its text (ALTX) and its class. A profile may write just the text, which
    means a process alarm."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True, populate_by_name=True)
    text: str = Field(min_length=1)
    alarm_class: AlarmClass = Field(default="process", alias="class")

    @model_validator(mode="before")
    @classmethod
    def _text_only(cls, data: object) -> object:
        return {"text": data} if isinstance(data, str) else data


class ProfileBase(StrictModel):
    """Fields shared by all transports. Subclasses add `variables` and `commands`."""

    kind: str = Field(min_length=1, description="tool kind, e.g. bonder")
    transport: str
    name: str = ""
    description: str = ""
    enums: dict[str, dict[str, int]] = Field(default_factory=dict)
    alarms: dict[int, AlarmSpec] = Field(default_factory=dict, description="ALID -> ALTX and class")
    safety_inputs: list[str] = Field(
        default_factory=list,
        description="interlock inputs beyond the kind's own (door, EMO) whose loss aborts and that "
                    "can never be bypassed")

    @model_validator(mode="after")
    def _contract_enums(self) -> ProfileBase:
        for table, members in CONTRACT_ENUMS.items():
            given = self.enums.get(table)
            if given is None:
                continue
            for member, code in members.items():
                if given.get(member) != code:
                    raise ValueError(
                        f"enums.{table}.{member} must be {code} (the contract's code), "
                        f"got {given.get(member)!r}"
                    )
        return self

    def enum_table(self, name: str) -> dict[str, int]:
        return self.enums.get(name) or CONTRACT_ENUMS[name]

    def alarm_text(self, alarm_id: int) -> str:
        spec = self.alarms.get(alarm_id)
        return spec.text if spec is not None else f"alarm {alarm_id}"

    def alarm_class(self, alarm_id: int) -> AlarmClass:
        """An alarm the profile does not list is a process alarm: the operator decides."""
        spec = self.alarms.get(alarm_id)
        return spec.alarm_class if spec is not None else "process"

    def variable_names(self) -> set[str]:
        return set(getattr(self, "variables", {}))

    def command_names(self) -> set[str]:
        return set(getattr(self, "commands", {}))

    def command_args(self, command: str) -> list[str]:
        """The variables a command carries to the tool, in wire order."""
        raise NotImplementedError


def check_enum_refs(profile: ProfileBase, refs: dict[str, str | None]) -> None:
    """Every `enum:` a variable names must exist (in the profile or the contract)."""
    known = set(profile.enums) | set(CONTRACT_ENUMS)
    for var, enum in refs.items():
        if enum is not None and enum not in known:
            raise ValueError(
                f"variables.{var}.enum: unknown enum table {enum!r}; allowed: {sorted(known)}"
            )


def check_command_args(profile: ProfileBase, variables: set[str]) -> None:
    for cmd in profile.command_names():
        for arg in profile.command_args(cmd):
            if arg not in variables:
                raise ValueError(
                    f"commands.{cmd}: argument {arg!r} is not a declared variable"
                )
