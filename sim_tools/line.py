"""Start every emulated tool of a line on loopback and describe where they are (the endpoints file).

Real tools of a hardware-in-loop line (emulated: false) are passed through with their configured
address, so the endpoints file always lists the whole line.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from drivers.addresses import MqttAddress
from drivers.errors import ConfigError
from drivers.line import Endpoint, Endpoints, LineConfig, ToolConfig
from drivers.profiles import HsmsProfile, ModbusProfile, MqttProfile, SerialProfile, load_profile
from drivers.secrets import SecretRef
from drivers.validation import validate_model
from sim_tools.clock import VirtualClock
from sim_tools.control import ControlServer
from sim_tools.faults import FaultSet, FaultSpec
from sim_tools.model import EmulatedTool
from sim_tools.physics import PHYSICS

log = logging.getLogger(__name__)


class EmulatorSettings(BaseModel):
    """The `emulator:` block of a tool in a line config."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    seed: int | None = None
    spread: float = Field(default=0.01, ge=0, le=0.2, description="relative 1-sigma of results")
    params: dict[str, float] = Field(default_factory=dict, description="physics overrides")
    faults: list[FaultSpec] = Field(default_factory=list)
    wire_time: bool = Field(default=True, description="serial: add wire time at the baud rate")
    mqtt_password: SecretRef | None = Field(
        default=None, description="external broker: the password the tool logs in with as its own name")


class _Server(Protocol):
    async def start(self) -> Any: ...
    async def stop(self) -> None: ...


class EmulatedLine:
    """`async with EmulatedLine(line) as line:` -> line.endpoints, line.tools[name] (the models)."""

    def __init__(self, config: LineConfig, run_dir: Path | None = None, base: Path | None = None):
        self.config = config
        self.base = base
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if run_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix=f"waferline-{config.name}-")
            run_dir = Path(self._tmp.name)
        self.run_dir = run_dir
        self.clock = VirtualClock(config.time_scale)
        self.tools: dict[str, EmulatedTool] = {}
        self.servers: dict[str, _Server] = {}
        self.broker: Any = None
        self.tool_logins: dict[str, SecretRef] = {}  # embedded broker: each MQTT tool's own password
        self.control: ControlServer | None = None
        self.endpoints: Endpoints | None = None

    async def start(self) -> Endpoints:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        try:
            try:
                broker = await self._start_broker()
            except OSError as exc:  # e.g. the configured port is taken
                raise ConfigError(f"line {self.config.name}: broker: cannot listen: {exc.strerror or exc}"
                                  ) from None
            live: list[Endpoint] = []
            for i, cfg in enumerate(self.config.tools):
                address = cfg.address
                if isinstance(address, MqttAddress) and broker is not None:
                    address = address.model_copy(update=broker)  # the controller's login
                if cfg.emulated:
                    try:
                        served = await self._start_tool(i, cfg, address)
                    except OSError as exc:  # a port in use, a device that cannot be opened
                        raise ConfigError(f"line {self.config.name}: tools.{i}({cfg.name}).address: "
                                          f"cannot serve it: {exc.strerror or exc}") from None
                    address = address if isinstance(address, MqttAddress) else served
                live.append(
                    Endpoint(name=cfg.name, kind=cfg.kind, transport=cfg.address.transport,
                             profile=cfg.profile, address=address)
                )
            control = None
            if self.tools:
                self.control = ControlServer(self.tools, self.run_dir / "control.sock", self.broker)
                control = str(await self.control.start())
        except BaseException:
            await self.stop()
            raise
        self.endpoints = Endpoints(
            line=self.config.name, time_scale=self.config.time_scale, pid=os.getpid(),
            broker=broker, control=control, tools=live,
        )
        return self.endpoints

    async def stop(self) -> None:
        if self.control is not None:
            await self.control.stop()
            self.control = None
        for name, server in reversed(list(self.servers.items())):
            try:
                await server.stop()
            except Exception:
                log.exception("stopping emulator %s failed", name)
        self.servers.clear()
        for tool in self.tools.values():
            await tool.close()
        if self.broker is not None:
            await self.broker.stop()
            self.broker = None
        if self._tmp is not None:
            with contextlib.suppress(OSError):
                self._tmp.cleanup()

    async def __aenter__(self) -> EmulatedLine:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def _start_broker(self) -> dict[str, Any] | None:
        """The address fields of the controller's login: the embedded broker is started with a
        password per tool and controller, the line's ACL and TLS (sim_tools/broker_auth.py)."""
        cfg = self.config.broker
        if cfg is None:
            return None
        if not cfg.embedded:
            return cfg.controller_address()
        from sim_tools.broker_auth import start_embedded_broker

        secured = await start_embedded_broker(self.config, self.run_dir / "secrets", self.base)
        self.broker, self.tool_logins = secured.broker, secured.tools
        return secured.controller

    def _tool_login(self, cfg: ToolConfig, settings: EmulatorSettings, where: str) -> dict[str, Any]:
        """An emulated MQTT tool logs in as itself, never with the controller's credentials."""
        broker = self.config.broker
        if broker is None or broker.anonymous:
            return {"username": None, "password": None}
        password = self.tool_logins.get(cfg.name) or settings.mqtt_password
        if password is None:
            raise ConfigError(f"{where}.mqtt_password: an emulated tool on an external broker logs in as "
                              f"{cfg.name!r} with its own password: give {{file: PATH}} or {{env: NAME}}")
        return {"username": cfg.name, "password": password}

    async def _start_tool(self, index: int, cfg: ToolConfig, address: Any) -> Any:
        where = f"line {self.config.name}: tools.{index}({cfg.name}).emulator"
        settings = validate_model(EmulatorSettings, cfg.emulator, where, ConfigError)
        seed = settings.seed if settings.seed is not None else self.config.seed * 1000 + index
        try:
            physics = PHYSICS[cfg.kind](spread=settings.spread, params=settings.params)
        except ValueError as exc:
            raise ConfigError(f"{where}.{exc}") from None
        tool = EmulatedTool(cfg.name, physics, self.clock, FaultSet(settings.faults, seed), seed)
        self.tools[cfg.name] = tool
        if isinstance(address, MqttAddress):
            address = address.model_copy(update=self._tool_login(cfg, settings, where))
        server = _make_server(tool, load_profile(cfg.profile, self.base), address, self.run_dir,
                              settings)
        self.servers[cfg.name] = server
        live = await server.start()
        log.info("emulator %s (%s) up at %s", cfg.name, cfg.kind, live)
        return live


def _make_server(
    tool: EmulatedTool, profile: Any, address: Any, run_dir: Path, settings: EmulatorSettings
) -> _Server:
    if isinstance(profile, ModbusProfile):
        from sim_tools.servers.modbus import ModbusToolServer

        return ModbusToolServer(tool, profile, address, run_dir=run_dir)
    if isinstance(profile, SerialProfile):
        from sim_tools.servers.serial import SerialToolServer

        return SerialToolServer(tool, profile, address, run_dir=run_dir, wire_time=settings.wire_time)
    if isinstance(profile, MqttProfile):
        from sim_tools.servers.mqtt import MqttToolServer

        return MqttToolServer(tool, profile, address, run_dir=run_dir)
    if isinstance(profile, HsmsProfile):
        from sim_tools.servers.gem import GemToolServer

        return GemToolServer(tool, profile, address)
    raise AssertionError(type(profile).__name__)
