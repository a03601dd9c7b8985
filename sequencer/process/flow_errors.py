"""Readable flow-load errors: which file, which step, which field, and the range the field allows.

Split from flow.py so the flow models stay one purpose; `describe` turns a pydantic ValidationError of
a flow file into one line per problem, labelled with the step id found at the error's location.
"""

from __future__ import annotations

from typing import Any

from annotated_types import Ge, Gt, Le, Lt
from pydantic import BaseModel, ValidationError

from drivers.tool import Recipe


def allowed(model: type[BaseModel], field: str) -> str:
    """'allowed 10-75' / 'allowed one of [...]' for a model field, from its declared bounds."""
    info = model.model_fields.get(field)
    if info is None:
        return f"allowed fields: {', '.join(model.model_fields)}"
    lo = hi = None
    for meta in info.metadata:
        if isinstance(meta, Ge | Gt):
            lo = meta.ge if isinstance(meta, Ge) else meta.gt
        if isinstance(meta, Le | Lt):
            hi = meta.le if isinstance(meta, Le) else meta.lt
    if lo is not None or hi is not None:
        return f"allowed {lo if lo is not None else '-inf'}-{hi if hi is not None else 'inf'}"
    args = getattr(info.annotation, "__args__", None)
    return f"allowed one of {list(args)}" if args else ""


def recipe_problems(model: type[Recipe], exc: ValidationError) -> list[str]:
    out = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"] if not str(p).startswith("function-after")]
        field = loc[0] if loc else ""
        got = err.get("input")
        got_text = "" if isinstance(got, dict | list) or not field else f" (got {got!r})"
        hint = allowed(model, field) if field else ""
        msg = str(err["msg"]).removeprefix("Value error, ")
        out.append(f"recipe{'.' + field if field else ''}: {msg}{got_text}" + (f"; {hint}" if hint else ""))
    return out


def _step_label(data: Any, loc: tuple[int | str, ...]) -> str:
    """'step A5' for an error under steps.<i>[.steps.<j>], from the raw YAML."""
    node = data
    label = ""
    try:
        for part in loc:
            node = node[part]
            if isinstance(node, dict) and "id" in node:
                label = f"step {node['id']}"
    except (KeyError, IndexError, TypeError):
        pass
    return label


def _field_hint(root: type[BaseModel], loc: tuple[int | str, ...]) -> str:
    """The allowed range of the flow-level field at `loc` (wafers.max, substrate.thickness_um, ...)."""
    model: Any = root
    for part in loc[:-1]:
        info = model.model_fields.get(part) if isinstance(part, str) else None
        model = info.annotation if info is not None else None
        args = [a for a in getattr(model, "__args__", ()) if isinstance(a, type) and issubclass(a, BaseModel)]
        model = args[0] if args else model  # Optional[Model] -> Model
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return ""
    return allowed(model, str(loc[-1])) if loc and isinstance(loc[-1], str) else ""


def describe(source: str, data: Any, exc: ValidationError, root: type[BaseModel]) -> str:
    lines = [f"{source}: {exc.error_count()} problem(s)"]
    for err in exc.errors():
        loc = tuple(p for p in err["loc"]
                    if p not in ("step", "repeat") and not str(p).startswith("function"))
        label = _step_label(data, loc)
        path = ".".join(str(p) for p in loc) or "<top>"
        msg = str(err["msg"]).removeprefix("Value error, ")
        got = err.get("input")
        got_text = "" if isinstance(got, dict | list) or err["type"] == "value_error" else f" (got {got!r})"
        hint = _field_hint(root, loc) if err["type"] in ("less_than_equal", "greater_than_equal") else ""
        got_text += f"; {hint}" if hint else ""
        lines.append(f"  - {path}{' (' + label + ')' if label and label not in msg else ''}: {msg}{got_text}")
    return "\n".join(lines)
