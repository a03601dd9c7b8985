"""Where configs come from. A name (`emulated`, `flow-a`, `bonder-modbus`) is looked up, first hit wins:

1. `--config-dir DIR` (the CLI's global option), else `$WAFERLINE_CONFIG_DIR`: `DIR/<kind>/<name>.yaml`;
2. the current directory: `./configs/<kind>/<name>.yaml`;
3. the configs shipped with waferline (package data of an installed wheel, `configs/` of a checkout).

A path (anything with a slash or a .yaml suffix) is read as given. `<kind>` is lines, flows, profiles,
recipes, materials or structures.
"""

from __future__ import annotations

import importlib.resources
import os
from pathlib import Path

from drivers.errors import ConfigError

CONFIG_DIR_ENV = "WAFERLINE_CONFIG_DIR"
_override: Path | None = None


def _shipped() -> Path:
    packaged = Path(str(importlib.resources.files("drivers"))) / "configs"  # a wheel puts them here
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[1] / "configs"


SHIPPED = _shipped()


def set_config_dir(path: Path | None) -> None:
    """The CLI's --config-dir: searched before $WAFERLINE_CONFIG_DIR's and the current directory's."""
    global _override
    if path is not None and not path.is_dir():
        raise ConfigError(f"--config-dir {path}: no such directory")
    _override = path


def config_dirs(kind: str) -> list[Path]:
    """The directories searched for `kind`, in order; the shipped one always last."""
    user = _override or (Path(os.environ[CONFIG_DIR_ENV]) if os.environ.get(CONFIG_DIR_ENV) else None)
    dirs = [d / kind for d in (user, Path.cwd() / "configs") if d is not None] + [SHIPPED / kind]
    unique: list[Path] = []
    for d in dirs:
        if d.resolve() not in [u.resolve() for u in unique]:
            unique.append(d)
    return unique


def is_path(name: str) -> bool:
    return name.endswith((".yaml", ".yml")) or "/" in name


def names(kind: str) -> list[str]:
    """Every name of `kind` that can be given, over all the directories."""
    found = {p.stem for d in config_dirs(kind) if d.is_dir() for p in d.glob("*.yaml")}
    return sorted(found)


def find(kind: str, name: str, error: type[ConfigError] = ConfigError) -> Path:
    """The file for `name` (a path as given); `error` listing the names that exist when none matches."""
    if is_path(name):
        return Path(name)
    for d in config_dirs(kind):
        path = d / f"{name}.yaml"
        if path.is_file():
            return path
    searched = ", ".join(str(d) for d in config_dirs(kind))
    raise error(f"no {kind[:-1] if kind.endswith('s') else kind} named {name!r}; there are: "
                f"{', '.join(names(kind)) or 'none'} (searched {searched})")
