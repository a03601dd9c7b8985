"""MQTT topic layouts: retained JSON status, QoS 1 JSON commands with correlation id and reply topic.

Wire conventions (documented here once, used by driver and emulator):
- `status`  retained JSON object {variable: value, ...}, published by the tool on every change.
- `command` JSON {"id": str, "cmd": str, "args": {...}, "reply_to": topic}; the built-in command
  `read` with args {"names": [...]} returns those variables.
- `reply`   JSON {"id": str, "ok": bool, "values": {...}} or {"id", "ok": false, "error": text}.
- `online`  retained "online"; the tool's last will publishes "offline" there.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, model_validator

from drivers.profiles.base import (
    ProfileBase,
    StrictModel,
    ValueType,
    check_command_args,
    check_enum_refs,
)

READ_COMMAND = "read"


class MqttTopics(StrictModel):
    """Topic templates; {prefix} comes from the tool's address, {client} from the driver."""

    status: str = "{prefix}/status"
    command: str = "{prefix}/cmd"
    reply: str = "{prefix}/reply/{client}"
    online: str = "{prefix}/online"
    events: str = "{prefix}/events"

    @model_validator(mode="after")
    def _templates(self) -> MqttTopics:
        for which in ("status", "command", "reply", "online", "events"):
            template: str = getattr(self, which)
            fields = set(re.findall(r"{([^{}]*)}", template))
            needed = {"prefix", "client"} if which == "reply" else {"prefix"}
            if not needed <= fields:
                raise ValueError(f"{which}: {template!r} lacks {{{'}, {'.join(sorted(needed - fields))}}}: "
                                 "every tool's topics must be under its own prefix")
            if fields - {"prefix", "client"} or any(c in template for c in "+#\x00"):
                raise ValueError(f"{which}: {template!r} may hold only {{prefix}} and {{client}} and no "
                                 "wildcard (+ or #)")
            try:
                template.format(prefix="p", client="c")
            except (ValueError, KeyError, IndexError) as exc:
                raise ValueError(f"{which}: {template!r} is not a topic template: {exc}") from None
        return self

    def render(self, which: str, prefix: str, client: str = "") -> str:
        template: str = getattr(self, which)
        return template.format(prefix=prefix, client=client)


class MqttVariable(StrictModel):
    type: ValueType
    key: str | None = Field(default=None, description="JSON key; defaults to the variable name")
    enum: str | None = None
    unit: str | None = None
    description: str = ""

    @model_validator(mode="after")
    def _enum(self) -> MqttVariable:
        if (self.type == "enum") != (self.enum is not None):
            raise ValueError("type 'enum' needs `enum:` naming its table, and only it may have one")
        return self


class MqttCommand(StrictModel):
    args: list[str] = Field(default_factory=list)


class MqttProfile(ProfileBase):
    transport: Literal["mqtt"]
    topics: MqttTopics = Field(default_factory=MqttTopics)
    qos: Literal[0, 1, 2] = 1
    variables: dict[str, MqttVariable]
    commands: dict[str, MqttCommand]

    @model_validator(mode="after")
    def _check(self) -> MqttProfile:
        check_enum_refs(self, {n: v.enum for n, v in self.variables.items()})
        check_command_args(self, set(self.variables))
        if READ_COMMAND in self.commands:
            raise ValueError(f"commands.{READ_COMMAND} is built in; do not declare it")
        return self

    def command_args(self, command: str) -> list[str]:
        return list(self.commands[command].args)

    def key_of(self, variable: str) -> str:
        return self.variables[variable].key or variable
