"""HMI accounts: a name, a role of the roles work (operator < engineer < supervisor) and an argon2id hash.

The file is JSON, mode 0600 (refused if others may read or write it), at $WAFERLINE_HMI_USERS or
./.waferline/hmi-users.json. There is no default account and no default password: `waferline users add`
creates each one. An unknown name is checked against a dummy hash, so a login takes as long for a name
that does not exist as for a wrong password.
"""

from __future__ import annotations

import json
import os
import re
import stat
import time
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from drivers.errors import ConfigError
from drivers.secrets import write_private
from drivers.validation import describe_validation_error
from sequencer.run.roles import Role

USERS_ENV = "WAFERLINE_HMI_USERS"
DEFAULT_USERS = Path(".waferline") / "hmi-users.json"
NAME = r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$"
MIN_PASSWORD = 12
_HASHER = PasswordHasher()
_DUMMY = _HASHER.hash("not a password of anyone")


class Account(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Role
    hash: str = Field(pattern=r"^\$argon2id\$")
    created: str


class UsersFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    users: dict[str, Account] = Field(default_factory=dict)


def users_path() -> Path:
    return Path(os.environ.get(USERS_ENV) or DEFAULT_USERS)


def load_users(path: Path | None = None) -> UsersFile:
    path = path or users_path()
    try:
        st = path.stat()
    except FileNotFoundError:
        return UsersFile()
    if stat.S_IMODE(st.st_mode) & 0o077:
        mode = stat.S_IMODE(st.st_mode)
        raise ConfigError(f"{path}: mode {mode:04o}: a file of password hashes must be 0600 (chmod 600)")
    try:
        return UsersFile.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except ValueError as exc:
        if isinstance(exc, ValidationError):
            raise ConfigError(describe_validation_error(str(path), exc)) from None
        raise ConfigError(f"{path}: not a users file: {exc}") from None


def add_user(name: str, role: Role, password: str, path: Path | None = None, *,
             replace: bool = False) -> Path:
    path = path or users_path()
    if not re.match(NAME, name):
        raise ConfigError(f"user name {name!r}: letters, digits, '_', '.', '-', from a letter, at most 64")
    if len(password) < MIN_PASSWORD:
        raise ConfigError(f"password: at least {MIN_PASSWORD} characters")
    users = load_users(path)
    if name in users.users and not replace:
        raise ConfigError(f"{path}: user {name!r} exists (--replace to set a new password or role)")
    users.users[name] = Account(role=role, hash=_HASHER.hash(password),
                                created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_private(path, users.model_dump_json(indent=2))
    return path


def remove_user(name: str, path: Path | None = None) -> None:
    path = path or users_path()
    users = load_users(path)
    if users.users.pop(name, None) is None:
        raise ConfigError(f"{path}: no user {name!r}")
    write_private(path, users.model_dump_json(indent=2))


def verify(users: UsersFile, name: str, password: str) -> Account | None:
    """The account if the password is right; None otherwise (same cost for an unknown name)."""
    account = users.users.get(name)
    try:
        _HASHER.verify(account.hash if account else _DUMMY, password)
    except (VerificationError, InvalidHashError):
        return None
    return account
