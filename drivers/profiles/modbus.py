"""Modbus register maps: table, 0-based address, type, word order, scale/offset, access."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from drivers.profiles.base import (
    ProfileBase,
    StrictModel,
    Value,
    check_command_args,
    check_enum_refs,
)

ModbusTable = Literal["coil", "discrete", "input", "holding"]
ModbusType = Literal["bool", "uint16", "int16", "uint32", "int32", "float32"]
WordOrder = Literal["big", "little"]

REGISTER_WIDTH: dict[str, int] = {
    "bool": 1, "uint16": 1, "int16": 1, "uint32": 2, "int32": 2, "float32": 2,
}


class ModbusVariable(StrictModel):
    """One variable: engineering value = raw * scale + offset (raw is the decoded integer/float)."""

    table: ModbusTable
    address: int = Field(ge=0, le=65535, description="0-based protocol address")
    type: ModbusType = "uint16"
    word_order: WordOrder | None = Field(default=None, description="32-bit only; profile default")
    scale: float = Field(default=1.0, description="must not be 0")
    offset: float = 0.0
    enum: str | None = None
    unit: str | None = None
    description: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> ModbusVariable:
        bit_table = self.table in ("coil", "discrete")
        if bit_table != (self.type == "bool"):
            raise ValueError(
                f"type {self.type!r} does not fit table {self.table!r}: coil/discrete are 'bool', "
                "input/holding are uint16/int16/uint32/int32/float32"
            )
        if self.scale == 0:
            raise ValueError("scale must not be 0")
        if self.address + self.width > 65536:
            raise ValueError(f"address {self.address} + {self.width} register(s) of {self.type} runs past "
                             f"65535, the top of the {self.table} table")
        if self.enum is not None and self.type not in ("uint16", "int16", "uint32", "int32"):
            raise ValueError("enum variables must have an integer type")
        return self

    @property
    def width(self) -> int:
        return REGISTER_WIDTH[self.type]

    @property
    def writable(self) -> bool:
        return self.table in ("coil", "holding")


class ModbusCommand(StrictModel):
    """Write `args` to their registers, then write `value` to the trigger register `write`."""

    args: list[str] = Field(default_factory=list)
    write: str = Field(description="the command register variable")
    value: int = Field(ge=0, le=65535)


class ModbusProfile(ProfileBase):
    transport: Literal["modbus"]
    word_order: WordOrder = "big"
    variables: dict[str, ModbusVariable]
    commands: dict[str, ModbusCommand]

    @model_validator(mode="after")
    def _check(self) -> ModbusProfile:
        check_enum_refs(self, {n: v.enum for n, v in self.variables.items()})
        check_command_args(self, set(self.variables))
        for cmd_name, cmd in self.commands.items():
            trigger = self.variables.get(cmd.write)
            if trigger is None or trigger.table != "holding":
                raise ValueError(
                    f"commands.{cmd_name}.write: {cmd.write!r} must be a holding-register variable"
                )
            for arg in cmd.args:
                if not self.variables[arg].writable:
                    raise ValueError(
                        f"commands.{cmd_name}: argument {arg!r} is in a read-only table"
                    )
        self._check_overlaps()
        return self

    def _check_overlaps(self) -> None:
        used: dict[tuple[str, int], str] = {}
        for name, var in self.variables.items():
            for i in range(var.width):
                key = (var.table, var.address + i)
                if key in used:
                    raise ValueError(
                        f"variables.{name}: {var.table} address {var.address + i} "
                        f"already used by {used[key]!r}"
                    )
                used[key] = name

    def command_args(self, command: str) -> list[str]:
        return list(self.commands[command].args)

    def word_order_of(self, var: ModbusVariable) -> WordOrder:
        return var.word_order or self.word_order

    def encode_enum(self, var: ModbusVariable, value: Value) -> Value:
        if var.enum is None:
            return value
        table = self.enum_table(var.enum)
        if value not in table:
            raise ValueError(f"{value!r} is not in enum {var.enum}: {sorted(table)}")
        return table[str(value)]
