"""Host checks judged on the resolved address, never on the spelling: "0", "0.0" and
"000.000.000.000" all resolve to the IPv4 wildcard address, and "localhost" may resolve to ::1.

Loopback only is the default of everything waferline listens on; an external broker may be
anywhere a site configures, but never the wildcard address (which targets nothing in particular).
"""

from __future__ import annotations

import ipaddress
import socket
import urllib.parse


def resolve(host: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """Every address `host` resolves to (numeric forms as the C library reads them); [] if none."""
    if host in ("", "*"):
        return [ipaddress.IPv4Address(0)]  # the wildcard: what a listener reads an empty host as
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return []
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


def loopback_problem(host: str) -> str | None:
    """Why `host` is not a loopback address to listen on, or None if it is."""
    addresses = resolve(host)
    if not addresses:
        return f"{host!r} does not resolve"
    if any(a.is_unspecified for a in addresses):
        return f"{host!r} is the wildcard address (every interface): use 127.0.0.1"
    others = [str(a) for a in addresses if not a.is_loopback]
    if others:
        return (f"{host!r} resolves to {', '.join(others)}, not loopback: emulators and the embedded "
                "broker serve 127.0.0.1 or ::1 only")
    return None


def wildcard_problem(host: str) -> str | None:
    """Why `host` cannot be a broker to connect to (the wildcard address), or None."""
    if any(a.is_unspecified for a in resolve(host)):
        return f"{host!r} is the wildcard address, not a host: give the broker's address"
    return None


def socket_url_host(url: str) -> str | None:
    """The host of a socket://HOST:PORT serial url, else None."""
    if not url.startswith("socket://"):
        return None
    return urllib.parse.urlparse(url).hostname or ""
