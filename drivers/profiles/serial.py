"""Serial (line-oriented ASCII) command sets: request and reply templates with {variable} fields.

Templates are Python format strings. Both sides parse with a regex derived from the same template,
so the driver and the emulator cannot drift: `STATE={state} T={chuck_temp_c:.1f}`.
"""

from __future__ import annotations

import string
from typing import Literal

from pydantic import Field, model_validator

from drivers.profiles.base import (
    ProfileBase,
    StrictModel,
    ValueType,
    check_command_args,
    check_enum_refs,
)


def template_fields(template: str) -> list[str]:
    """The {field} names of a template, in order."""
    return [f for _, f, _, _ in string.Formatter().parse(template) if f]


class SerialVariable(StrictModel):
    type: ValueType
    enum: str | None = None
    unit: str | None = None
    description: str = ""

    @model_validator(mode="after")
    def _enum(self) -> SerialVariable:
        if (self.type == "enum") != (self.enum is not None):
            raise ValueError("type 'enum' needs `enum:` naming its table, and only it may have one")
        return self


class SerialQuery(StrictModel):
    """A request that returns variables, e.g. `STATUS?` -> `STATE={state} ALARM={alarm_id}`."""

    request: str = Field(min_length=1)
    reply: str = Field(min_length=1)


class SerialCommand(StrictModel):
    """A request carrying variables, acknowledged by `reply` (default `OK`)."""

    request: str = Field(min_length=1)
    reply: str = "OK"


class SerialProfile(ProfileBase):
    transport: Literal["serial"]
    terminator: str = Field(default="\r\n", min_length=1)
    encoding: Literal["ascii", "utf-8", "latin-1"] = "ascii"
    error_reply: str = Field(default="ERR {code} {text}", description="rejection reply template")
    queries: dict[str, SerialQuery]
    variables: dict[str, SerialVariable]
    commands: dict[str, SerialCommand]

    @model_validator(mode="after")
    def _check(self) -> SerialProfile:
        check_enum_refs(self, {n: v.enum for n, v in self.variables.items()})
        check_command_args(self, set(self.variables))
        for qname, q in self.queries.items():
            for f in template_fields(q.reply):
                if f not in self.variables:
                    raise ValueError(f"queries.{qname}.reply: field {f!r} is not a declared variable")
        if set(template_fields(self.error_reply)) != {"code", "text"}:
            raise ValueError("error_reply must have exactly the fields {code} and {text}")
        return self

    def command_args(self, command: str) -> list[str]:
        return template_fields(self.commands[command].request)

    def query_for(self, variable: str) -> str | None:
        """The first query whose reply carries the variable."""
        for qname, q in self.queries.items():
            if variable in template_fields(q.reply):
                return qname
        return None

    def readable(self) -> set[str]:
        return {f for q in self.queries.values() for f in template_fields(q.reply)}
