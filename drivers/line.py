"""Line configuration (which tools, where, which profile) and the endpoints file `sim up` writes."""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from drivers.addresses import (
    PROFILE_TRANSPORT,
    Address,
    HsmsAddress,
    ModbusTcpAddress,
    MqttAddress,
    SerialAddress,
)
from drivers.channel import Timeouts
from drivers.configs import SHIPPED, find
from drivers.errors import ConfigError, ProfileError
from drivers.kinds import KINDS
from drivers.netcheck import loopback_problem, socket_url_host, wildcard_problem
from drivers.profile_fit import check_fits_kind
from drivers.profiles.loader import load_profile
from drivers.secrets import SecretRef, write_private
from drivers.validation import read_yaml, validate_model

LINE_DIR = SHIPPED / "lines"
NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]{0,63}$"


class BrokerConfig(BaseModel):
    """The MQTT broker of a line. Credentials, an ACL and TLS are on by default (see drivers/mqtt_access.py).

    Embedded (amqtt, started by waferline): every tool and the controller get their own generated
    password, the ACL is derived from the line, and the broker's certificate is a throwaway one
    unless `cert_file`/`key_file` are given. External (mosquitto or a site broker): `username` and
    `password` are the controller's; the site's broker must enforce its own password file and ACL
    (`waferline broker acl LINE` prints one)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    embedded: bool = Field(default=True, description="start an amqtt broker on 127.0.0.1")
    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535, description="0: pick a free port")
    username: str = Field(default="controller", pattern=NAME_PATTERN, description="the controller's user")
    password: SecretRef | None = Field(default=None, description="{env: NAME} or {file: PATH}; never clear")
    tls: bool = True
    ca_file: str | None = Field(default=None, description="CA that signed the broker's certificate")
    cert_file: str | None = Field(default=None, description="embedded: the broker's certificate")
    key_file: str | None = Field(default=None, description="embedded: the broker's private key")
    anonymous: bool = Field(default=False, description="INSECURE: no credentials, no ACL (benches only)")

    @model_validator(mode="after")
    def _check(self) -> BrokerConfig:
        if self.anonymous and self.password is not None:
            raise ValueError("anonymous: true cannot go with a password")
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together")
        if not self.embedded:
            if self.cert_file is not None:
                raise ValueError("cert_file/key_file: only the embedded broker is started by waferline; "
                                 "an external broker's certificate is its own configuration")
            if not self.anonymous and self.password is None:
                raise ValueError("password: an external broker needs the controller's password "
                                 "({env: NAME} or {file: PATH}), or anonymous: true (insecure)")
        return self

    def controller_address(self) -> dict[str, Any]:
        """What an MQTT tool address takes from the broker section (the controller's side)."""
        if self.anonymous:
            return {"host": self.host, "port": self.port, "username": None, "password": None,
                    "tls": self.tls, "ca_file": self.ca_file}
        return {"host": self.host, "port": self.port, "username": self.username,
                "password": self.password, "tls": self.tls, "ca_file": self.ca_file}


class ToolConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    name: str = Field(pattern=NAME_PATTERN)
    kind: str
    profile: str = Field(description="profile name in configs/profiles or a path")
    emulated: bool = True
    address: Address
    poll_interval_s: float | None = Field(default=None, gt=0, le=60)
    timeouts: Timeouts = Field(default_factory=Timeouts)
    emulator: dict[str, Any] = Field(
        default_factory=dict, description="emulator settings (seed, spread, params, faults)"
    )


class LineConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""
    time_scale: float = Field(default=1.0, gt=0, le=1e7, description="tool s per wall s")
    seed: int = 0
    broker: BrokerConfig | None = None
    tools: list[ToolConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> LineConfig:
        seen: set[str] = set()
        for i, tool in enumerate(self.tools):
            where = f"tools.{i}({tool.name})"
            if tool.name in seen:
                raise ValueError(f"{where}.name: duplicate tool name")
            seen.add(tool.name)
            if tool.kind not in KINDS:
                raise ValueError(f"{where}.kind: {tool.kind!r} not one of {sorted(KINDS)}")
            if isinstance(tool.address, MqttAddress) and self.broker is None:
                raise ValueError(f"{where}.address: MQTT tools need a `broker:` section")
        if self.broker is not None:
            check = loopback_problem if self.broker.embedded else wildcard_problem
            if (why := check(self.broker.host)) is not None:
                raise ValueError(f"broker.host: {why}")
        _check_emulated_addresses(self.tools)
        if self.broker is not None and not self.broker.embedded:  # the broker section is the truth
            self.tools = [t.model_copy(update={"address": t.address.model_copy(
                update=self.broker.controller_address())}) if isinstance(t.address, MqttAddress) else t
                for t in self.tools]
        return self

    def tool(self, name: str) -> ToolConfig:
        for t in self.tools:
            if t.name == name:
                return t
        raise ConfigError(f"line {self.name!r} has no tool {name!r}")


def _check_emulated_addresses(tools: list[ToolConfig]) -> None:
    """Emulators serve loopback only, and two cannot listen on one fixed port."""
    ports: dict[int, str] = {}
    for i, tool in enumerate(tools):
        if not tool.emulated:
            continue
        where, a = f"tools.{i}({tool.name}).address", tool.address
        host = a.host if isinstance(a, ModbusTcpAddress | HsmsAddress) else (
            socket_url_host(a.url) if isinstance(a, SerialAddress) else None)
        if host is not None and (why := loopback_problem(host)) is not None:
            raise ValueError(f"{where}: {why}")
        port = a.port if isinstance(a, ModbusTcpAddress | HsmsAddress) else (
            urllib.parse.urlparse(a.url).port if isinstance(a, SerialAddress) and host is not None else None)
        if port:
            if port in ports:
                raise ValueError(f"{where}.port: {port} is also {ports[port]}'s; give each tool its own, "
                                 "or 0 for a free one")
            ports[port] = tool.name


def check_profiles(line: LineConfig, base: Path | None = None) -> None:
    """Every tool's profile exists, fits its kind, and matches its address's transport."""
    for tool in line.tools:
        where = f"line {line.name}: tools.{tool.name}"
        try:
            profile = load_profile(tool.profile, base)
        except ProfileError as exc:
            raise ConfigError(f"{where}.profile: {exc}") from exc
        if profile.kind != tool.kind:
            raise ConfigError(f"{where}.profile: is for kind {profile.kind!r}, tool is {tool.kind!r}")
        wanted = PROFILE_TRANSPORT[tool.address.transport]
        if profile.transport != wanted:
            raise ConfigError(
                f"{where}.address.transport: {tool.address.transport} needs a {wanted} profile, "
                f"{profile.name!r} is {profile.transport}"
            )
        try:
            check_fits_kind(profile, KINDS[tool.kind], f"{where}.profile")
        except ProfileError as exc:
            raise ConfigError(str(exc)) from None


def load_line(name_or_path: str | Path) -> LineConfig:
    text = str(name_or_path)
    path = find("lines", text)
    line = validate_model(LineConfig, read_yaml(path), str(path))
    check_profiles(line, path.parent)
    return line


class Endpoint(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    name: str
    kind: str
    transport: str
    profile: str
    address: Address


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number")


class Endpoints(BaseModel):
    """What `waferline sim up` writes: the live address of every emulated tool."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    line: str
    time_scale: float
    pid: int | None = None
    broker: dict[str, Any] | None = None
    control: str | None = Field(default=None, description="Unix socket for run-time faults")
    tools: list[Endpoint]

    def write(self, path: Path) -> None:
        """0600: it names the broker's credentials (by reference) and every tool's address."""
        write_private(path, self.model_dump_json(indent=2, exclude_none=True))

    @classmethod
    def read(cls, path: Path) -> Endpoints:
        try:
            data = json.loads(path.read_text(encoding="utf-8"), parse_constant=_no_constant)
        except (OSError, ValueError) as exc:  # ValueError: bad JSON, not UTF-8, NaN or Infinity
            raise ConfigError(f"{path}: cannot read endpoints file: {exc}") from exc
        return validate_model(cls, data, str(path))


def check_endpoints(line: LineConfig, endpoints: Endpoints) -> None:
    """ConfigError if the endpoints file was written for other tools than the line's: a file of another
    line would pair this line's profiles with its addresses."""
    live = {e.name: e for e in endpoints.tools}
    for t in line.tools:
        e = live.get(t.name)
        if e is not None and (e.kind, e.profile, e.transport) != (t.kind, t.profile, t.address.transport):
            raise ConfigError(
                f"endpoints file of line {endpoints.line!r}: tool {t.name} is a {e.kind} with profile "
                f"{e.profile} over {e.transport} there, but a {t.kind} with profile {t.profile} over "
                f"{t.address.transport} in line {line.name!r}: give the line the emulators were started "
                "with (--line)")


def apply_endpoints(line: LineConfig, endpoints: Endpoints) -> LineConfig:
    """The line with each emulated tool's address replaced by its live one."""
    live = {e.name: e for e in endpoints.tools}
    check_endpoints(line, endpoints)
    tools = [
        t.model_copy(update={"address": live[t.name].address}) if t.name in live else t
        for t in line.tools
    ]
    return line.model_copy(update={"tools": tools, "time_scale": endpoints.time_scale})
