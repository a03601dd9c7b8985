"""Build channels and tool drivers from a line config: the one place that maps transport -> class."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from drivers.addresses import HsmsAddress, MqttAddress, SerialAddress
from drivers.channel import Channel
from drivers.kinds import KINDS
from drivers.line import LineConfig, ToolConfig
from drivers.profiles import HsmsProfile, ModbusProfile, MqttProfile, SerialProfile, load_profile
from drivers.tool import Tool


def make_channel(cfg: ToolConfig, base: Path | None = None) -> Channel:
    profile = load_profile(cfg.profile, base)
    address = cfg.address
    if isinstance(profile, ModbusProfile):
        from drivers.transports.modbus import ModbusChannel

        assert not isinstance(address, SerialAddress | MqttAddress | HsmsAddress)
        return ModbusChannel(cfg.name, profile, address, cfg.timeouts)
    if isinstance(profile, SerialProfile):
        from drivers.transports.serial import SerialChannel

        assert isinstance(address, SerialAddress)
        return SerialChannel(cfg.name, profile, address, cfg.timeouts)
    if isinstance(profile, MqttProfile):
        from drivers.transports.mqtt import MqttChannel

        assert isinstance(address, MqttAddress)
        return MqttChannel(cfg.name, profile, address, cfg.timeouts)
    if isinstance(profile, HsmsProfile):
        from drivers.transports.gem import HsmsChannel

        assert isinstance(address, HsmsAddress)
        return HsmsChannel(cfg.name, profile, address, cfg.timeouts)
    raise AssertionError(f"unhandled profile type {type(profile).__name__}")


def default_poll_interval(time_scale: float) -> float:
    """Real tools: 0.25 s. Emulated lines poll faster so short jobs are not dominated by polling."""
    return 0.25 if time_scale <= 1 else max(0.002, min(0.25, 50.0 / time_scale))


def make_tool(cfg: ToolConfig, line: LineConfig, base: Path | None = None) -> Tool[Any, Any]:
    kind = KINDS[cfg.kind]
    return kind(
        cfg.name,
        make_channel(cfg, base),
        time_scale=line.time_scale,
        poll_interval_s=cfg.poll_interval_s or default_poll_interval(line.time_scale),
    )
