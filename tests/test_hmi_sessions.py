"""HMI sessions expire (idle and absolute), logins are throttled per address and per name, and
`waferline hmi` serves TLS when given a certificate, refusing another interface in clear."""

from __future__ import annotations

import os
import ssl
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from sim_tools.broker_auth import throwaway_certificates
from tests.fixtures.common import free_port
from tests.fixtures.sequencer import WAFERLINE
from waferline.hmi.sessions import LoginLimiter, Sessions


def test_sessions_expire_when_idle_and_at_most_after_max(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    sessions = Sessions(ttl_s=60, max_s=300)
    s = sessions.create("alice", "operator")
    clock[0] += 59
    assert sessions.get(s.token) is s  # used: the idle clock starts again
    clock[0] += 59
    assert sessions.get(s.token) is s
    clock[0] += 61
    assert sessions.get(s.token) is None  # idle too long
    t = sessions.create("alice", "operator")
    for _ in range(6):
        clock[0] += 50
        assert sessions.get(t.token) is t
    clock[0] += 1
    assert sessions.get(t.token) is None  # 300 s after login, however busy
    assert sessions.get("forged") is None and sessions.get(None) is None


def test_login_limiter_counts_failures_per_key(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [0.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    limiter = LoginLimiter(limit=3, window_s=60)
    for _ in range(3):
        assert limiter.wait_s("ip:a", "user:x") == 0
        limiter.failed("ip:a", "user:x")
    assert limiter.wait_s("ip:b", "user:x") == pytest.approx(60)  # the name is locked from anywhere
    assert limiter.wait_s("ip:a", "user:y") == pytest.approx(60)  # and the address for any name
    assert limiter.wait_s("ip:b", "user:y") == 0
    clock[0] += 61
    assert limiter.wait_s("ip:a", "user:x") == 0


def test_hmi_serves_tls_and_refuses_another_interface_in_clear(tmp_path: Path) -> None:
    ca, cert, key = throwaway_certificates(tmp_path / "tls")
    env = {**os.environ, "WAFERLINE_HMI_USERS": str(tmp_path / "users.json"),
           "WAFERLINE_RUNS_DIR": str(tmp_path / "runs")}
    # another interface in clear (a documentation address: refused before anything binds)
    clear = subprocess.run([*WAFERLINE, "hmi", "--host", "192.0.2.1", "--port", str(free_port()),
                            "--state-dir", str(tmp_path / "s")], capture_output=True, text=True, env=env,
                           timeout=60)
    assert clear.returncode == 2 and "--tls-cert" in clear.stderr
    half = subprocess.run([*WAFERLINE, "hmi", "--tls-cert", str(cert), "--port", str(free_port())],
                          capture_output=True, text=True, env=env, timeout=60)
    assert half.returncode == 2 and "go together" in half.stderr
    port = free_port()
    trust = ssl.create_default_context(cafile=str(ca))
    proc = subprocess.Popen([*WAFERLINE, "hmi", "--port", str(port), "--tls-cert", str(cert), "--tls-key",
                             str(key), "--state-dir", str(tmp_path / "s")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                page = httpx.get(f"https://127.0.0.1:{port}/login", verify=trust, timeout=2)
                break
            except httpx.TransportError:
                alive = proc.poll() is None and time.monotonic() < deadline
                assert alive, proc.stderr.read() if proc.stderr else ""
                time.sleep(0.2)
        assert page.status_code == 200 and "secure" in page.headers["set-cookie"].lower()
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{port}/login", timeout=2)  # no clear text on the TLS port
    finally:
        proc.terminate()
        proc.wait(10)
