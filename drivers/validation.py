"""Turn pydantic and YAML errors into messages a technician can act on: file, field, allowed values."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from drivers.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


def describe_validation_error(source: str, exc: ValidationError) -> str:
    lines = [f"{source}: {exc.error_count()} problem(s)"]
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-after"))
        got = err.get("input")
        got_text = "" if isinstance(got, dict | list) else f" (got {got!r})"
        lines.append(f"  - {loc or '<top>'}: {err['msg']}{got_text}")
    return "\n".join(lines)


def read_yaml(path: Path, error: type[ConfigError] = ConfigError) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise error(f"{path}: cannot read: {exc.strerror}") from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise error(f"{path}: not valid YAML: {exc}") from exc


def validate_model(
    model: type[M], data: Any, source: str, error: type[ConfigError] = ConfigError
) -> M:
    if not isinstance(data, dict):
        raise error(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise error(describe_validation_error(source, exc)) from exc
