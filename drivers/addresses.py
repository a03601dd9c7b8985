"""Where a tool is: one address model per transport, as written in line configs and endpoint files."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from drivers.secrets import SecretRef
from drivers.transports.hsms_timers import HsmsTimers


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


class HsmsAddress(_Address):
    """A GEM tool's HSMS-SS passive end: the host (waferline) connects, the tool listens."""

    transport: Literal["hsms"] = "hsms"
    host: str = "127.0.0.1"
    port: int = Field(default=5000, ge=0, le=65535, description="0: the emulator picks a free port")
    session: int = Field(default=0, ge=0, le=32767, description="device id (HSMS session id)")
    timers: HsmsTimers = Field(default_factory=HsmsTimers, description="T3, T5, T6, T7, T8, linktest")
    events: bool = Field(default=True, description=(
        "define reports and enable the profile's collection events (S2F33/35/37): a job's end arrives "
        "as an S6F11; false: status by polling only"))


Address = Annotated[
    ModbusTcpAddress | ModbusRtuAddress | SerialAddress | MqttAddress | HsmsAddress,
    Field(discriminator="transport"),
]

PROFILE_TRANSPORT = {
    "modbus_tcp": "modbus",
    "modbus_rtu": "modbus",
    "serial": "serial",
    "mqtt": "mqtt",
    "hsms": "hsms",
}
