"""Package structures: one module per structure of the source documents, each defining `STRUCTURE`
(a `Structure`: its rules before and after each step, its permissives, its claims and its limits,
read from configs/structures/<name>.yaml). Modules are discovered, so adding a structure is one
module here, one limits file, one flow and tests: no other file changes.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil

from drivers.errors import ConfigError
from sequencer.process.structures.base import Structure

__all__ = ["Structure", "named", "names"]
_NOT_STRUCTURES = {"base", "limits"}


@functools.cache
def _registry() -> dict[str, Structure]:
    found: dict[str, Structure] = {}
    for module in pkgutil.iter_modules(__path__):
        if module.name in _NOT_STRUCTURES:
            continue
        structure = getattr(importlib.import_module(f"{__name__}.{module.name}"), "STRUCTURE", None)
        if isinstance(structure, Structure):
            found[structure.name] = structure
    return found


def names() -> list[str]:
    return sorted(_registry())


def named(name: str) -> Structure:
    try:
        return _registry()[name]
    except KeyError:
        raise ConfigError(f"structure {name!r} is not one of {names()}") from None
