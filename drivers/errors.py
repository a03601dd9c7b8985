"""Typed exceptions: every failure a caller must tell apart has its own class.

A sequencer decides hold vs. abort vs. retry from the class alone, so transports must translate
library exceptions (pymodbus, aiomqtt, pyserial, OSError) into these and never leak them.
"""

from __future__ import annotations


class WaferlineError(Exception):
    """Root of every error this project raises on purpose."""


class ConfigError(WaferlineError):
    """A profile, line or flow file is invalid; the message names the file, field and allowed values."""


class ProfileError(ConfigError):
    """A protocol profile is invalid or does not supply what a tool kind needs."""


class ToolError(WaferlineError):
    """Something went wrong talking to or running one tool."""

    def __init__(self, tool: str, message: str) -> None:
        super().__init__(f"{tool}: {message}")
        self.tool = tool
        self.reason = message


class ToolConnectionError(ToolError):
    """The link to the tool could not be opened or was lost (socket closed, pty gone, broker down)."""


class ToolOffline(ToolConnectionError):
    """The tool announced itself offline (MQTT last will) or never came online."""


class ToolTimeout(ToolError):
    """No (complete) reply within the request timeout, or a job overran its deadline."""


class ProtocolError(ToolError):
    """A garbled or unparseable frame: bad Modbus header, a serial line matching no pattern, bad JSON."""


class CommandRejected(ToolError):
    """The tool refused a command (busy, interlock open, recipe value out of its range)."""


class ToolAlarm(ToolError):
    """The tool raised an alarm (SEMI E30 ALID/ALTX) before or during a job."""

    def __init__(self, tool: str, alarm_id: int, text: str) -> None:
        super().__init__(tool, f"alarm {alarm_id}: {text}")
        self.alarm_id = alarm_id
        self.text = text


class JobAborted(ToolError):
    """The job ended ABORTED on the tool (by an abort command or the tool's own safety logic)."""
