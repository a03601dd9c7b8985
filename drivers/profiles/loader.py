"""Find and validate profile files: `bonder-modbus` resolves to configs/profiles/bonder-modbus.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, TypeAdapter, ValidationError

from drivers.configs import SHIPPED, find, names
from drivers.errors import ProfileError
from drivers.profiles.hsms import HsmsProfile
from drivers.profiles.modbus import ModbusProfile
from drivers.profiles.mqtt import MqttProfile
from drivers.profiles.serial import SerialProfile
from drivers.validation import describe_validation_error, read_yaml

PROFILE_DIR = SHIPPED / "profiles"

AnyProfile = Annotated[
    ModbusProfile | SerialProfile | MqttProfile | HsmsProfile, Field(discriminator="transport")
]
_ADAPTER: TypeAdapter[ModbusProfile | SerialProfile | MqttProfile | HsmsProfile] = TypeAdapter(AnyProfile)
TRANSPORTS = ("modbus", "serial", "mqtt", "hsms")


def resolve_profile_path(name_or_path: str | Path, base: Path | None = None) -> Path:
    """A bare name is looked up (drivers/configs.py: --config-dir, ./configs, shipped); anything with
    a suffix or a slash is a path (relative to `base`, the line's directory, if given)."""
    text = str(name_or_path)
    if text.endswith((".yaml", ".yml")) or "/" in text:
        path = Path(text)
        if not path.is_absolute() and base is not None:
            path = base / path
        return path
    return find("profiles", text, ProfileError)


def parse_profile(data: Any, source: str) -> ModbusProfile | SerialProfile | MqttProfile | HsmsProfile:
    if not isinstance(data, dict):
        what = "is empty: expected" if data is None else "expected"
        raise ProfileError(f"{source}: {what} a mapping at the top level")
    transport = data.get("transport")
    if transport not in TRANSPORTS:
        raise ProfileError(
            f"{source}: transport: must be one of {', '.join(TRANSPORTS)} (got {transport!r})"
        )
    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as exc:
        raise ProfileError(describe_validation_error(source, exc)) from exc


Profile = ModbusProfile | SerialProfile | MqttProfile | HsmsProfile
_CACHE: dict[tuple[str, int, int], Profile] = {}  # (path, mtime_ns, size) -> parsed (frozen) profile


def load_profile(name_or_path: str | Path, base: Path | None = None) -> Profile:
    """The profile at a name or path, parsed once per file version: a line of 200 tools shares the
    27 shipped profiles (profiles are frozen models, so sharing is safe); an edited file is re-read."""
    path = resolve_profile_path(name_or_path, base)
    try:
        st = path.stat()
    except OSError:
        raise ProfileError(f"{path}: no such profile; there are: {', '.join(names('profiles'))}") from None
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    cached = _CACHE.get(key)
    if cached is not None:
        return cached
    profile = parse_profile(read_yaml(path, ProfileError), str(path))
    if not profile.name:
        profile = profile.model_copy(update={"name": path.stem})
    _CACHE[key] = profile
    return profile
