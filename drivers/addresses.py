"""Where a tool is: one address model per transport, as written in line configs and endpoint files."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from drivers.secrets import SecretRef


class _Address(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


class ModbusTcpAddress(_Address):
    transport: Literal["modbus_tcp"] = "modbus_tcp"
    host: str = "127.0.0.1"
    port: int = Field(default=502, ge=0, le=65535, description="0: the emulator picks a free port")
    unit: int = Field(default=1, ge=0, le=247, description="Modbus device id")


class ModbusRtuAddress(_Address):
    transport: Literal["modbus_rtu"] = "modbus_rtu"
    device: str = Field(description="serial device path; 'pty' lets the emulator make one")
    baud: int = Field(default=19200, ge=300, le=4_000_000)
    parity: Literal["N", "E", "O"] = "E"
    unit: int = Field(default=1, ge=1, le=247)


class SerialAddress(_Address):
    transport: Literal["serial"] = "serial"
    url: str = Field(description="/dev/ttyUSB0, a pty path, socket://127.0.0.1:PORT, or 'pty'")
    baud: int = Field(default=115200, ge=300, le=4_000_000)


class MqttAddress(_Address):
    transport: Literal["mqtt"] = "mqtt"
    prefix: str = Field(min_length=1, max_length=512, pattern=r"^[^+#\x00]+$",
                        description="topic prefix, e.g. waferline/line1/sputter1 (no + or #)")
    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=0, le=65535)
    username: str | None = None
    password: SecretRef | None = Field(default=None, description="{env: NAME} or {file: PATH}; never clear")
    tls: bool = False
    ca_file: str | None = None


Address = Annotated[
    ModbusTcpAddress | ModbusRtuAddress | SerialAddress | MqttAddress,
    Field(discriminator="transport"),
]

PROFILE_TRANSPORT = {
    "modbus_tcp": "modbus",
    "modbus_rtu": "modbus",
    "serial": "serial",
    "mqtt": "mqtt",
}
