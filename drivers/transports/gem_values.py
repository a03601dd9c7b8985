"""A profile variable's value as a SECS-II item and back, by the format its GEM profile declares.

Enums travel as their code in an integer item (or as the member name in an A item). A number that a
format cannot hold is an error here, never a wrapped value on the wire.
"""

from __future__ import annotations

import math

from drivers.profiles.base import Value
from drivers.profiles.hsms import INTEGER_RANGE, HsmsProfile
from drivers.transports.secs2 import Item


class ValueMismatch(ValueError):
    """An item or a value does not fit the variable's declared format."""


def to_item(profile: HsmsProfile, name: str, value: Value) -> Item:
    var = profile.variables[name]
    fmt = var.format
    if var.enum is not None:
        table = profile.enum_table(var.enum)
        if fmt == "A":
            if value not in table:
                raise ValueMismatch(f"{name}: {value!r} is not a member of {sorted(table)}")
            return Item("A", str(value))
        code = table.get(str(value)) if isinstance(value, str) else value
        if code is None:
            raise ValueMismatch(f"{name}: {value!r} is not a member of {sorted(table)}")
        value = code
    if fmt == "A":
        return Item("A", str(value))
    if fmt == "BOOLEAN":
        return Item("BOOLEAN", [bool(value)])
    if fmt in ("F4", "F8"):
        if isinstance(value, str) or not math.isfinite(float(value)):
            raise ValueMismatch(f"{name}: {value!r} is not a finite number")
        return Item(fmt, [float(value)])
    if isinstance(value, str) or (isinstance(value, float) and not value.is_integer()):
        raise ValueMismatch(f"{name}: {value!r} is not an integer ({fmt})")
    low, high = INTEGER_RANGE[fmt]
    if not low <= int(value) <= high:
        raise ValueMismatch(f"{name}: {value} does not fit {fmt} ({low}..{high})")
    return Item(fmt, [int(value)])


def from_item(profile: HsmsProfile, name: str, item: Item) -> Value:
    """The neutral value of an item received for `name`; ValueMismatch names what did not fit."""
    var = profile.variables[name]
    table = profile.enum_table(var.enum) if var.enum is not None else {}
    if item.format == "A":
        text = str(item.value)
        if var.enum is not None and text in table:
            return text
        if var.format == "A" and var.enum is None:
            return text
        raise ValueMismatch(f"{name}: A item {text!r} where {var.format} was declared")
    if item.format == "L" or not isinstance(item.value, list | bytes) or len(item.value) != 1:
        size = len(item.value) if isinstance(item.value, list | bytes) else "?"
        raise ValueMismatch(f"{name}: a {item.format} item of {size} values, not one {var.format} "
                            "(an empty item: the tool does not know this id)")
    raw = item.value[0]
    if item.format == "BOOLEAN":
        if var.format == "BOOLEAN":
            return bool(raw)
    elif item.format in ("F4", "F8"):
        if var.format in ("F4", "F8"):
            return float(raw)
    elif item.format in INTEGER_RANGE or item.format == "B":
        if var.enum is not None:
            member = next((m for m, c in table.items() if c == raw), None)
            if member is None:
                raise ValueMismatch(f"{name}: code {raw} is not a member of enum {var.enum} {table}")
            return member
        if var.format in INTEGER_RANGE:
            return int(raw)
        if var.format in ("F4", "F8"):
            return float(raw)
        if var.format == "BOOLEAN" and raw in (0, 1):
            return bool(raw)
    raise ValueMismatch(f"{name}: {item.format} item where {var.format} was declared")


def param_from_item(profile: HsmsProfile, name: str, item: Item) -> Value:
    """A command parameter (CPVAL): as from_item, and a number or flag may also come as text (A), as
    many hosts and tools send every CPVAL."""
    var = profile.variables[name]
    if item.format != "A" or var.format == "A" or var.enum is not None:
        return from_item(profile, name, item)
    text = str(item.value).strip()
    try:
        if var.format in ("F4", "F8"):
            number = float(text)
            if not math.isfinite(number):
                raise ValueError(text)
            return number
        if var.format == "BOOLEAN":
            return {"true": True, "false": False, "1": True, "0": False}[text.lower()]
        return int(text)
    except (ValueError, KeyError):
        raise ValueMismatch(f"{name}: {text!r} is not a {var.format} value") from None


def to_text_item(profile: HsmsProfile, name: str, value: Value) -> Item:
    """A CPVAL as text, for tools whose remote commands take every parameter as A."""
    to_item(profile, name, value)  # the same range checks
    return Item("A", str(value))
