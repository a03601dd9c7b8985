"""Who may do what on a running sequencer: the caller's OS identity and a site's roles file.

The control socket reads the caller from the kernel (SO_PEERCRED: pid, uid, gid), never from what the
caller types; `--who` may add a name after the OS user, never replace it. Roles come from a YAML file
that maps users and groups to operator < engineer < supervisor:

    users:  {alice: engineer, bob: supervisor}
    groups: {fab-operators: operator, process-eng: engineer}

Its path is $WAFERLINE_ROLES, else /etc/waferline/roles.yaml. A caller the file does not name, or a
line without a roles file, is an operator: hold, restart, stop, abort, status and tool status/abort.
Resetting a run or a tool's alarm and bypassing an interlock need an engineer; scrapping a stack needs
a supervisor. A roles file that others than its owner may write is refused (anyone could promote
themselves); keep it owned by the site's administrator.
"""

from __future__ import annotations

import grp
import os
import pwd
import socket
import stat
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from drivers.errors import ConfigError
from drivers.validation import read_yaml, validate_model

Role = Literal["operator", "engineer", "supervisor"]
RANK: dict[str, int] = {"operator": 0, "engineer": 1, "supervisor": 2}
ROLES_ENV = "WAFERLINE_ROLES"
DEFAULT_ROLES = Path("/etc/waferline/roles.yaml")
# what each remote command needs; "tool:<op>" for tool commands
NEEDED: dict[str, Role] = {
    "status": "operator", "tools": "operator", "hold": "operator", "restart": "operator", "stop": "operator",
    "abort": "operator", "tool:status": "operator", "tool:abort": "operator",
    "reset": "engineer", "tool:reset": "engineer", "bypass": "engineer", "scrap": "supervisor",
}


class RolesFile(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    users: dict[str, Role] = Field(default_factory=dict)
    groups: dict[str, Role] = Field(default_factory=dict)


@dataclass(frozen=True)
class Caller:
    """A control socket's peer, as the kernel reports it."""

    user: str
    uid: int
    gid: int
    pid: int

    def groups(self) -> list[str]:
        try:
            gids = os.getgrouplist(self.user, self.gid)
        except (KeyError, OSError):
            gids = [self.gid]
        names = []
        for g in gids:
            try:
                names.append(grp.getgrgid(g).gr_name)
            except KeyError:
                names.append(str(g))
        return names

    def who(self, typed: str) -> str:
        """The journaled identity: the OS user, with the typed name after it when it says more."""
        typed = typed.strip()
        return self.user if not typed or typed == self.user else f"{self.user} ({typed})"


def peer(sock: socket.socket) -> Caller:
    """The caller on a Unix socket, from SO_PEERCRED (Linux)."""
    pid, uid, gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                       struct.calcsize("3i")))
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = f"uid{uid}"
    return Caller(user=user, uid=uid, gid=gid, pid=pid)


def roles_path() -> Path:
    env = os.environ.get(ROLES_ENV)
    return Path(env) if env else DEFAULT_ROLES


def load_roles(path: Path | None = None) -> RolesFile:
    """The site's roles (empty when there is no file); ConfigError for a bad or unsafe file."""
    path = path or roles_path()
    if not path.exists():
        return RolesFile()
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o022:
        raise ConfigError(f"roles file {path} may be written by others (mode {mode:04o}): anyone could "
                          f"grant themselves a role; chmod go-w {path}")
    return validate_model(RolesFile, read_yaml(path) or {}, str(path))


def role_of(caller: Caller, roles: RolesFile) -> Role:
    """The highest role the file gives the caller's user or any of its groups; operator by default."""
    found: list[Role] = ["operator"]
    if caller.user in roles.users:
        found.append(roles.users[caller.user])
    found += [roles.groups[g] for g in caller.groups() if g in roles.groups]
    return max(found, key=lambda r: RANK[r])


def refusal(command: str, caller: Caller, role: Role) -> str | None:
    """Why the caller may not give this command, naming the role needed; None if allowed."""
    needed = NEEDED.get(command, "supervisor")
    if RANK[role] >= RANK[needed]:
        return None
    return (f"{command.replace('tool:', 'tools ')} needs the {needed} role; {caller.user} is {role} "
            f"(roles: {roles_path()})")
