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
from drivers.profiles import ModbusProfile, MqttProfile, SerialProfile, load_profile
from drivers.validation import validate_model
from sim_tools.clock import VirtualClock
from sim_tools.control import ControlServer
from sim_tools.faults import FaultSet, FaultSpec
from sim_tools.model import EmulatedTool
from sim_tools.physics import PHYSICS

log = logging.getLogger(__name__)


class EmulatorSettings(BaseModel):
    """The `emulator:` block of a tool in a line config."""

    model_config = ConfigDict(extra="forbid")
    seed: int | None = None
    spread: float = Field(default=0.01, ge=0, le=0.2, description="relative 1-sigma of results")
    params: dict[str, float] = Field(default_factory=dict, description="physics overrides")
    faults: list[FaultSpec] = Field(default_factory=list)
    wire_time: bool = Field(default=True, description="serial: add wire time at the baud rate")


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
        self.control: ControlServer | None = None
        self.endpoints: Endpoints | None = None

    async def start(self) -> Endpoints:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        try:
            broker = await self._start_broker()
            live: list[Endpoint] = []
            for i, cfg in enumerate(self.config.tools):
                address = cfg.address
                if isinstance(address, MqttAddress) and broker is not None:
                    address = address.model_copy(update=broker)
                if cfg.emulated:
                    address = await self._start_tool(i, cfg, address)
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
        cfg = self.config.broker
        if cfg is None:
            return None
        if not cfg.embedded:
            return {"host": cfg.host, "port": cfg.port, "username": cfg.username,
                    "password": cfg.password, "tls": cfg.tls, "ca_file": cfg.ca_file}
        from sim_tools.broker import EmbeddedBroker

        asked = [n for n in ("username", "password", "tls", "ca_file") if getattr(cfg, n)]
        if asked:  # an option the broker cannot honour is an error, never silently ignored
            raise ConfigError(f"line {self.config.name}: broker.{asked[0]}: the embedded broker does not "
                              "enforce credentials or TLS yet; set broker.embedded: false and run mosquitto "
                              "with a password file, an ACL and TLS")

        self.broker = EmbeddedBroker(host=cfg.host, port=cfg.port)
        port = await self.broker.start()
        return {"host": cfg.host, "port": port}

    async def _start_tool(self, index: int, cfg: ToolConfig, address: Any) -> Any:
        where = f"line {self.config.name}: tools.{index}({cfg.name}).emulator"
        settings = validate_model(EmulatorSettings, cfg.emulator, where, ConfigError)
        seed = settings.seed if settings.seed is not None else self.config.seed * 1000 + index
        physics = PHYSICS[cfg.kind](spread=settings.spread, params=settings.params)
        tool = EmulatedTool(cfg.name, physics, self.clock, FaultSet(settings.faults, seed), seed)
        self.tools[cfg.name] = tool
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
    raise AssertionError(type(profile).__name__)
