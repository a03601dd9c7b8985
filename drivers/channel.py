"""The protocol-neutral channel every transport implements: read variables, send commands.

The base class owns what all transports share: connect timeout, reconnect with exponential backoff,
per-request timeout, and the rule that reads are retried once after a reconnect (they are
idempotent) while commands are never retried (the tool may already have acted on them).
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from drivers.errors import ProtocolError, ToolConnectionError, ToolError, ToolTimeout
from drivers.logs import tool_logger
from drivers.profiles.base import ProfileBase, Value

T = TypeVar("T")


class Timeouts(BaseModel):
    """Wall-clock seconds: I/O does not speed up with the emulators' time scale."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)
    connect_s: float = Field(default=5.0, gt=0, le=600)
    request_s: float = Field(default=2.0, gt=0, le=600)
    backoff_initial_s: float = Field(default=0.05, gt=0, le=60)
    backoff_max_s: float = Field(default=2.0, gt=0, le=600)


class Channel(ABC):
    """One link to one tool. Use as `async with channel:` or call connect()/close()."""

    transport: str = "?"
    generation: int = 0  # event-driven transports bump it whenever the tool reports a change

    def __init__(self, tool: str, profile: ProfileBase, timeouts: Timeouts | None = None) -> None:
        self.tool = tool
        self.profile = profile
        self.timeouts = timeouts or Timeouts()
        self.log = tool_logger(f"drivers.{self.transport}", tool, self.transport)
        self._connected = False
        self._closed = False
        self._link_lock = asyncio.Lock()
        # one request on the wire at a time: a serial line or a Modbus client has one pending reply, so
        # an operator's status or abort sent while the sequencer polls must wait its turn, not interleave
        self._request_lock = asyncio.Lock()
        self._checked: set[tuple[str, ...]] = set()  # name lists already checked against the profile

    # --- what a transport implements -------------------------------------------------------
    @abstractmethod
    async def _open(self) -> None:
        """Open the link once; raise ToolConnectionError (or OSError) if it cannot."""

    @abstractmethod
    async def _shutdown(self) -> None:
        """Close the link and cancel every task the transport started. Must not raise."""

    @abstractmethod
    async def _read(self, names: Sequence[str]) -> dict[str, Value]:
        """Read the variables; raise the typed errors of drivers.errors."""

    @abstractmethod
    async def _command(self, name: str, args: Mapping[str, Value]) -> None:
        """Send a command and wait for its acknowledgement."""

    # --- public API ------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._connected

    async def connect(self) -> None:
        """Connect, retrying with backoff until `connect_s` has passed."""
        self._closed = False
        await self._ensure_connected()

    async def close(self) -> None:
        self._closed = True
        async with self._link_lock:
            await self._drop()

    async def read(self, names: Sequence[str]) -> dict[str, Value]:
        self._check_names(names)
        try:
            return await self._io(lambda: self._read(names))
        except ToolConnectionError:
            self.log.warning("link lost during read; reconnecting and reading once more")
            return await self._io(lambda: self._read(names))

    async def command(self, name: str, args: Mapping[str, Value] | None = None) -> None:
        if name not in self.profile.command_names():
            raise ToolError(
                self.tool,
                f"profile {self.profile.name!r} has no command {name!r}; "
                f"it has {sorted(self.profile.command_names())}",
            )
        await self._io(lambda: self._command(name, args or {}))

    async def wait_change(self, seen: int, timeout_s: float) -> None:
        """Return after `timeout_s`, or as soon as `generation` moves past `seen`: a polling transport
        just sleeps; one whose tool reports events (GEM's S6F11) wakes a waiting job at once."""
        await asyncio.sleep(timeout_s)

    async def __aenter__(self: T) -> T:
        await self.connect()  # type: ignore[attr-defined]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # --- internals -------------------------------------------------------------------------
    def _check_names(self, names: Sequence[str]) -> None:
        key = tuple(names)
        if key in self._checked:
            return
        known = self.profile.variable_names()
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ToolError(
                self.tool, f"profile {self.profile.name!r} has no variable(s) {unknown}"
            )
        self._checked.add(key)

    async def _io(self, op: Callable[[], Awaitable[T]]) -> T:
        async with self._request_lock:
            return await self._io_now(op)

    async def _io_now(self, op: Callable[[], Awaitable[T]]) -> T:
        await self._ensure_connected()
        try:
            async with asyncio.timeout(self.timeouts.request_s):
                return await op()
        except TimeoutError:
            raise ToolTimeout(
                self.tool, f"no reply within {self.timeouts.request_s:g} s ({self.transport})"
            ) from None
        except ToolConnectionError:
            await self._mark_lost()
            raise
        except (ToolTimeout, ProtocolError):
            raise
        except OSError as exc:
            await self._mark_lost()
            raise ToolConnectionError(self.tool, f"link lost: {exc}") from exc

    async def _mark_lost(self) -> None:
        async with self._link_lock:
            await self._drop()

    async def _drop(self) -> None:
        if self._connected:
            self._connected = False
        await self._shutdown()

    async def _ensure_connected(self) -> None:
        if self._connected:
            return
        if self._closed:
            raise ToolConnectionError(self.tool, "channel is closed")
        async with self._link_lock:
            if self._connected:
                return
            await self._connect_with_backoff()

    async def _connect_with_backoff(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeouts.connect_s
        delay = self.timeouts.backoff_initial_s
        last: BaseException | None = None
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                async with asyncio.timeout(remaining):
                    await self._open()
                self._connected = True
                self.log.info("connected")
                return
            except (TimeoutError, OSError, ToolConnectionError) as exc:
                last = exc
                await self._shutdown()
            await asyncio.sleep(min(delay, max(0.0, deadline - loop.time())))
            delay = min(delay * 2, self.timeouts.backoff_max_s)
        raise ToolConnectionError(
            self.tool,
            f"cannot connect ({self.transport}) within {self.timeouts.connect_s:g} s: "
            f"{str(last) or type(last).__name__ if last else 'timed out'}",
        )


def describe(value: Any) -> str:
    """Short repr for error messages about frames."""
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."

