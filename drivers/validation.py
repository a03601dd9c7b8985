"""Turn pydantic and YAML errors into messages a technician can act on: file, field, allowed values."""

from __future__ import annotations

import math
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


class _StrictLoader(yaml.SafeLoader):
    """YAML as configs need it: a duplicate key or a NaN/infinite number is an error, never the
    last-one-wins or NaN that plain YAML gives (a NaN passes every range check: NaN < x is False)."""


def _mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    first: dict[Any, yaml.Mark] = {}
    for key_node, _ in node.value:  # before merging: a key may override one merged in by <<
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=True)
        try:
            mark = first.setdefault(key, key_node.start_mark)
        except TypeError:
            continue  # an unhashable key: construct_mapping says so below
        if mark is not key_node.start_mark:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first given on line {mark.line + 1})",
                key_node.start_mark)
    loader.flatten_mapping(node)
    return loader.construct_mapping(node, deep=True)


def _float(loader: _StrictLoader, node: yaml.ScalarNode) -> float:
    value = loader.construct_yaml_float(node)
    if not math.isfinite(value):
        raise yaml.constructor.ConstructorError(
            None, None, f"{node.value!r} is not a finite number", node.start_mark)
    return value


_StrictLoader.add_constructor("tag:yaml.org,2002:map", _mapping)
_StrictLoader.add_constructor("tag:yaml.org,2002:float", _float)


def parse_yaml(text: str, source: str, error: type[ConfigError] = ConfigError) -> Any:
    """YAML text to data; `error` naming `source`, the line and the problem if it is not valid."""
    try:
        return yaml.load(text, Loader=_StrictLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        raise error(f"{source}: not valid YAML: {where}{exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise error(f"{source}: not valid YAML: {str(exc).splitlines()[0]}") from None
    except RecursionError:
        raise error(f"{source}: not valid YAML: nested too deep") from None


def read_yaml(path: Path, error: type[ConfigError] = ConfigError) -> Any:
    """A YAML file's data; `error` naming the file for a missing, unreadable, non-UTF-8 or invalid one."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise error(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    return parse_yaml(text, str(path), error)


def validate_model(
    model: type[M], data: Any, source: str, error: type[ConfigError] = ConfigError
) -> M:
    if data is None:
        raise error(f"{source}: is empty: expected a mapping of settings")
    if not isinstance(data, dict):
        raise error(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise error(describe_validation_error(source, exc)) from exc
