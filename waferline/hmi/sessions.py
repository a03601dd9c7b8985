"""Browser sessions and login throttling, in memory: a restart of the HMI logs everyone out.

A session is a random 256-bit token in an HttpOnly, SameSite=Strict cookie; it expires after
`ttl_s` without use and at most `max_s` after login. Each session has its own CSRF token, which every
state-changing request must echo in the X-CSRF-Token header (a page from another origin cannot read it).
Logins are limited per client address and per user name: after `limit` failures in `window_s`, the
next attempt waits.
"""

from __future__ import annotations

import secrets
import time
from collections import deque
from dataclasses import dataclass, field


@dataclass
class Session:
    token: str
    user: str
    role: str
    csrf: str
    created: float
    used: float


@dataclass
class Sessions:
    ttl_s: float = 30 * 60
    max_s: float = 12 * 3600
    _by_token: dict[str, Session] = field(default_factory=dict)

    def create(self, user: str, role: str) -> Session:
        now = time.monotonic()
        session = Session(secrets.token_urlsafe(32), user, role, secrets.token_urlsafe(32), now, now)
        self._by_token[session.token] = session
        return session

    def get(self, token: str | None) -> Session | None:
        if not token:
            return None
        session = self._by_token.get(token)
        now = time.monotonic()
        if session is None:
            return None
        if now - session.used > self.ttl_s or now - session.created > self.max_s:
            self._by_token.pop(token, None)
            return None
        session.used = now
        return session

    def drop(self, token: str | None) -> None:
        if token:
            self._by_token.pop(token, None)


@dataclass
class LoginLimiter:
    limit: int = 5
    window_s: float = 60.0
    _failures: dict[str, deque[float]] = field(default_factory=dict)

    def wait_s(self, *keys: str) -> float:
        """Seconds to wait before another attempt for any of the keys (0: go ahead)."""
        now = time.monotonic()
        worst = 0.0
        for key in keys:
            times = self._failures.get(key)
            if not times:
                continue
            while times and now - times[0] > self.window_s:
                times.popleft()
            if len(times) >= self.limit:
                worst = max(worst, self.window_s - (now - times[0]))
        return worst

    def failed(self, *keys: str) -> None:
        now = time.monotonic()
        for key in keys:
            self._failures.setdefault(key, deque()).append(now)

    def succeeded(self, *keys: str) -> None:
        for key in keys:
            self._failures.pop(key, None)
