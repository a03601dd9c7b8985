"""Secrets are referenced, never written: a password is read from an environment variable or from a
file only its owner can read, when a link opens. Line configs and the endpoints file `sim up` writes
carry the reference (`{env: NAME}` or `{file: PATH}`), so no secret ever lands on disk in clear.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

from drivers.errors import ConfigError

NEVER_IN_CLEAR = ("a password is never written in a config or endpoints file: give {env: NAME} (an "
                  "environment variable) or {file: PATH} (a file of mode 0600)")


class SecretRef(BaseModel):
    """Where a secret is: exactly one of an environment variable or a 0600 file."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)
    env: str | None = None
    file: Path | None = None

    @model_validator(mode="before")
    @classmethod
    def _not_in_clear(cls, data: Any) -> Any:
        if isinstance(data, str):
            raise ValueError(NEVER_IN_CLEAR)
        return data

    @model_validator(mode="after")
    def _one(self) -> SecretRef:
        if (self.env is None) == (self.file is None):
            raise ValueError(f"exactly one of env or file; {NEVER_IN_CLEAR}")
        return self

    def resolve(self, what: str) -> str:
        """The secret itself; ConfigError naming the variable or the file (and its mode) if unusable."""
        if self.env is not None:
            value = os.environ.get(self.env)
            if not value:
                raise ConfigError(f"{what}: environment variable {self.env} is not set")
            return value
        assert self.file is not None
        try:
            mode = stat.S_IMODE(self.file.stat().st_mode)
            if mode & 0o077:
                raise ConfigError(f"{what}: secrets file {self.file} is readable by others "
                                  f"(mode {mode:04o}); chmod 600 {self.file}")
            value = self.file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"{what}: cannot read secrets file {self.file}: {exc.strerror}") from exc
        if not value:
            raise ConfigError(f"{what}: secrets file {self.file} is empty")
        return value


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read (0600 whatever the umask), atomically by rename."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode("utf-8"))
    finally:
        os.close(fd)
    tmp.replace(path)
