"""Logging with equipment context (tool, transport, run, step) through the standard library.

tool/transport travel as `extra` on each driver's LoggerAdapter; run/step are context variables the
sequencer sets, so every record inside a step carries them without being passed around.
"""

from __future__ import annotations

import contextvars
import json
import logging
import time
from collections.abc import MutableMapping
from typing import Any

CONTEXT_FIELDS = ("tool", "transport", "run", "step")
_run: contextvars.ContextVar[str | None] = contextvars.ContextVar("waferline_run", default=None)
_step: contextvars.ContextVar[str | None] = contextvars.ContextVar("waferline_step", default=None)


class log_context:  # lower case: used like the function it was, `with log_context(step=...)`
    """Tag every record logged inside the block (and tasks it starts) with run and step.

    A class rather than a @contextmanager generator: the engine enters one per process job."""

    __slots__ = ("_run", "_step", "_tokens")

    def __init__(self, *, run: str | None = None, step: str | None = None) -> None:
        self._run, self._step = run, step
        self._tokens: list[tuple[contextvars.ContextVar[str | None], contextvars.Token[str | None]]] = []

    def __enter__(self) -> None:
        if self._run is not None:
            self._tokens.append((_run, _run.set(self._run)))
        if self._step is not None:
            self._tokens.append((_step, _step.set(self._step)))

    def __exit__(self, *exc: object) -> None:
        for var, token in reversed(self._tokens):
            var.reset(token)
        self._tokens.clear()


class ContextFilter(logging.Filter):
    """Fill the context fields on every record so formatters can rely on them."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "run", None) is None:
            record.run = _run.get()
        if getattr(record, "step", None) is None:
            record.step = _step.get()
        for name in ("tool", "transport"):
            if not hasattr(record, name):
                setattr(record, name, None)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log collectors on the fab floor."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                doc[name] = value
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc)


class TextFormatter(logging.Formatter):
    """Human format with the context fields that are set, e.g. `[bonder1 modbus]`."""

    def format(self, record: logging.LogRecord) -> str:
        ctx = " ".join(str(v) for n in CONTEXT_FIELDS if (v := getattr(record, n, None)))
        base = super().format(record)
        return f"{base} [{ctx}]" if ctx else base


class ToolLogger(logging.LoggerAdapter):  # type: ignore[type-arg,unused-ignore]
    """A logger bound to one tool and transport."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        kwargs["extra"] = {**(self.extra or {}), **kwargs.get("extra", {})}
        return msg, kwargs


def tool_logger(name: str, tool: str, transport: str) -> ToolLogger:
    return ToolLogger(logging.getLogger(name), {"tool": tool, "transport": transport})


def configure_logging(level: str = "WARNING", json_format: bool = False) -> None:
    """Root handler on stderr; quiets pymodbus and amqtt, which log per frame at INFO/DEBUG."""
    handler = logging.StreamHandler()
    handler.addFilter(ContextFilter())
    handler.setFormatter(
        JsonFormatter()
        if json_format
        else TextFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("pymodbus", "amqtt", "transitions"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
