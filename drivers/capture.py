"""Capture a driver's traffic to a JSON-lines trace and replay it as a golden test.

Capture sits at the channel boundary (variables read, commands sent, errors raised), so one
mechanism serves every transport. Replaying a trace needs no tool: `ReplayChannel` answers each
request with the recorded reply, in order, and fails with `TraceMismatch` the moment the driver asks
for something else - a change in driver behaviour shows up as a failing golden test.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from drivers import errors
from drivers.channel import Channel, Timeouts
from drivers.errors import ToolError, WaferlineError
from drivers.profiles.base import ProfileBase, Value


class TraceMismatch(WaferlineError):
    """The driver's request differs from the recorded one (or the trace ran out)."""


class CaptureChannel(Channel):
    """Wraps a live channel and appends every exchange to `path` (one JSON object per line)."""

    def __init__(self, inner: Channel, path: Path) -> None:
        super().__init__(inner.tool, inner.profile, inner.timeouts)
        self.transport = inner.transport
        self.inner = inner
        self.path = path
        self._file: TextIO | None = None

    async def connect(self) -> None:
        self._file = self.path.open("a", encoding="utf-8")
        self._write({"op": "open", "tool": self.tool, "transport": self.transport,
                     "profile": self.profile.name})
        await self.inner.connect()

    async def close(self) -> None:
        await self.inner.close()
        if self._file is not None:
            self._file.close()
            self._file = None

    async def read(self, names: Sequence[str]) -> dict[str, Value]:
        entry: dict[str, Any] = {"op": "read", "names": list(names)}
        try:
            values = await self.inner.read(names)
        except ToolError as exc:
            self._write(entry | {"error": type(exc).__name__, "reason": exc.reason})
            raise
        self._write(entry | {"values": values})
        return values

    async def command(self, name: str, args: Mapping[str, Value] | None = None) -> None:
        entry: dict[str, Any] = {"op": "command", "name": name, "args": dict(args or {})}
        try:
            await self.inner.command(name, args)
        except ToolError as exc:
            self._write(entry | {"error": type(exc).__name__, "reason": exc.reason})
            raise
        self._write(entry)

    def _write(self, entry: dict[str, Any]) -> None:
        assert self._file is not None, "capture channel is not connected"
        self._file.write(json.dumps(entry) + "\n")
        self._file.flush()

    # the inner channel does the I/O; these are never reached
    async def _open(self) -> None: ...
    async def _shutdown(self) -> None: ...
    async def _read(self, names: Sequence[str]) -> dict[str, Value]:
        raise AssertionError("unreachable")

    async def _command(self, name: str, args: Mapping[str, Value]) -> None:
        raise AssertionError("unreachable")


class ReplayChannel(Channel):
    """Serves a recorded trace; every request must match the next recorded one."""

    transport = "replay"

    def __init__(self, profile: ProfileBase, trace: Path, tool: str | None = None) -> None:
        entries = [json.loads(line) for line in trace.read_text(encoding="utf-8").splitlines() if line]
        head = entries[0] if entries and entries[0]["op"] == "open" else {}
        super().__init__(tool or head.get("tool", "replay"), profile, Timeouts())
        self.trace = trace
        self._entries = [e for e in entries if e["op"] != "open"]
        self._next = 0

    @property
    def remaining(self) -> int:
        return len(self._entries) - self._next

    async def _open(self) -> None:
        return None

    async def _shutdown(self) -> None:
        return None

    async def _read(self, names: Sequence[str]) -> dict[str, Value]:
        entry = self._expect({"op": "read", "names": list(names)})
        return dict(entry["values"])

    async def _command(self, name: str, args: Mapping[str, Value]) -> None:
        self._expect({"op": "command", "name": name, "args": dict(args)})

    def _expect(self, request: dict[str, Any]) -> dict[str, Any]:
        if self._next >= len(self._entries):
            raise TraceMismatch(f"{self.trace}: trace ended, driver asked {request}")
        entry = self._entries[self._next]
        recorded = {k: entry.get(k) for k in request}
        if recorded != request:
            raise TraceMismatch(
                f"{self.trace}: entry {self._next + 1}: recorded {recorded}, driver asked {request}"
            )
        self._next += 1
        if "error" in entry:
            error_cls = getattr(errors, entry["error"], ToolError)
            if not issubclass(error_cls, ToolError) or error_cls is errors.ToolAlarm:
                error_cls = ToolError  # channels raise (tool, reason) errors; alarms come from Tool
            raise error_cls(self.tool, entry["reason"])
        return entry
