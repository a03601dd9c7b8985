"""The HMI's JSON API over a real socket with httpx (issue 14): every endpoint refuses a request without
a session (401), a command without its CSRF token or with too low a role (403, naming the role), an
abort without confirmation (400); a command of the right role reaches the run's sequencer and is
journaled with the user and role; SSE and /metrics serve the shared snapshot; the users file is 0600."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from sequencer.run.journal import read_events
from tests.fixtures.common import free_port
from tests.fixtures.hmi import PASSWORD, Hmi
from tests.fixtures.sequencer import WAFERLINE


def wait_for(check: Any, what: str, limit_s: float = 60) -> Any:
    deadline = time.monotonic() + limit_s
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_users_file_is_private_and_has_no_clear_password(hmi: Hmi) -> None:
    path = Path(hmi.env["WAFERLINE_HMI_USERS"])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert PASSWORD not in text and text.count("$argon2id$") == 3
    listed = hmi.cli("users", "list")
    assert listed.returncode == 0 and "erin  engineer" in listed.stdout and "argon2" not in listed.stdout
    path.chmod(0o644)
    try:
        refused = hmi.cli("users", "list")
        assert refused.returncode == 2 and "must be 0600" in refused.stderr
    finally:
        path.chmod(0o600)


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/api/me"), ("GET", "/api/line"), ("GET", "/api/runs"), ("GET", "/api/runs/x"),
    ("GET", "/api/events"), ("POST", "/api/runs/x/hold"), ("POST", "/api/logout"),
    ("GET", "/runs/x/report/index.html"),
])
def test_without_a_session_the_api_answers_401(hmi: Hmi, method: str, path: str) -> None:
    res = httpx.request(method, hmi.url + path, json={}, timeout=5)
    assert res.status_code == 401 and res.json()["detail"] == "not logged in"


def test_pages_redirect_to_login_and_carry_a_strict_policy(hmi: Hmi) -> None:
    res = httpx.get(hmi.url + "/runs", timeout=5)
    assert res.status_code == 303 and res.headers["location"] == "/login"
    page = httpx.get(hmi.url + "/login", timeout=5)
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    cookie = page.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie


def test_login_needs_its_form_token(hmi: Hmi) -> None:
    form = {"user": "alice", "password": PASSWORD, "csrf": "forged"}
    res = httpx.post(hmi.url + "/login", data=form, timeout=5)
    assert res.status_code == 403


def test_reads_and_snapshot(hmi: Hmi) -> None:
    client = hmi.login("alice")
    assert client.get("/api/me").json()["role"] == "operator"
    line = wait_for(lambda: client.get("/api/line").json()["tools"], "the first refresh")
    assert {t["name"] for t in line} >= {"bonder1", "saw1", "sputter1"} and all(t["ok"] for t in line)
    with client.stream("GET", "/api/events") as events:
        for raw in events.iter_lines():
            if raw.startswith("data: "):
                assert json.loads(raw[6:])["tools"]
                break
    metrics = httpx.get(hmi.url + "/metrics", timeout=5).text
    assert 'waferline_tool_state{kind="bonder",state="IDLE",tool="bonder1"} 1.0' in metrics
    assert 'waferline_status_read_seconds_count{transport="serial"}' in metrics
    assert httpx.get(hmi.url + "/api/openapi.json", timeout=5).json()["info"]["title"] == "waferline HMI"


def test_commands_are_authorized_confirmed_and_journaled(hmi: Hmi) -> None:
    run = hmi.start_run()
    try:
        alice, erin, sam = hmi.login("alice"), hmi.login("erin"), hmi.login("sam")
        run_id = wait_for(lambda: [r["id"] for r in alice.get("/api/runs").json()["runs"]
                                   if r["state"] == "EXECUTE"], "the run")[0]
        no_csrf = httpx.post(f"{hmi.url}/api/runs/{run_id}/hold", json={}, cookies=alice.cookies, timeout=5)
        assert no_csrf.status_code == 403 and "X-CSRF-Token" in no_csrf.json()["detail"]
        busy = wait_for(lambda: [t for t in alice.get("/api/line").json()["tools"] if t.get("run") == run_id],
                        "a tool showing the run's step")
        assert busy[0]["step"]  # the line page names the step a run has on the tool
        held = alice.post(f"/api/runs/{run_id}/hold", json={"why": "check the chuck"})
        assert held.status_code == 200, held.text
        wait_for(lambda: alice.get(f"/api/runs/{run_id}").json()["state"] == "HELD", "HELD")
        scrap = alice.post(f"/api/runs/{run_id}/scrap", json={"stack": "S1", "confirm": True})
        assert scrap.status_code == 403
        assert scrap.json()["detail"] == "scrap needs the supervisor role; alice is operator"
        bypass = alice.post(f"/api/runs/{run_id}/bypass", json={"interlock": "n2_ok", "minutes": 5})
        assert bypass.status_code == 403 and "needs the engineer role" in bypass.json()["detail"]
        assert erin.post(f"/api/runs/{run_id}/bypass", json={"interlock": "n2_ok"}).status_code == 422
        granted = erin.post(f"/api/runs/{run_id}/bypass",
                            json={"interlock": "n2_supply_on", "minutes": 5, "why": "sensor under repair"})
        assert granted.status_code == 200, granted.text
        safety = erin.post(f"/api/runs/{run_id}/bypass",
                           json={"interlock": "door_closed", "minutes": 5, "why": "no"})
        assert safety.status_code == 409 and "safety" in safety.json()["detail"]
        assert alice.post(f"/api/runs/{run_id}/abort", json={}).status_code == 400  # asks for confirmation
        assert alice.post(f"/api/runs/{run_id}/restart", json={}).status_code == 200
        assert alice.post("/api/runs/nope/hold", json={}).status_code == 404
        aborted = sam.post(f"/api/runs/{run_id}/abort", json={"confirm": True, "why": "end of test"})
        assert aborted.status_code == 200, aborted.text
        assert run.wait(60) == 5  # ABORTED
        events = read_events(hmi.runs / run_id / "journal.sqlite")
        whos = [e.data.get("who", "") for e in events if e.kind == "state"]
        assert any("hmi:alice (operator)" in w for w in whos)
        assert any("hmi:sam (supervisor)" in w for w in whos)
        bypass = next(e.data for e in events if e.kind == "bypass")
        assert bypass["interlock"] == "n2_supply_on" and "hmi:erin (engineer)" in bypass["who"]
        assert bypass["role"] == "supervisor"  # the control socket journals its caller's real role: the HMI's
        after = alice.post(f"/api/runs/{run_id}/restart", json={})
        assert after.status_code == 409 and "controller not running" in after.json()["detail"]
        detail = alice.get(f"/api/runs/{run_id}").json()
        assert detail["controller"] == "not running" and detail["state"] == "ABORTED"
        for what in ["gantt", *(f"xsection-{s}" for s in detail["travelers"])]:  # drawn by the report's code
            png = alice.get(f"/api/runs/{run_id}/pictures/{what}.png")
            assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n", what
        assert alice.get(f"/api/runs/{run_id}/pictures/nope.png").status_code == 404
        metrics = httpx.get(hmi.url + "/metrics", timeout=5).text  # the journal's figures
        completed = [e for e in events if e.kind == "step_completed" and e.data.get("tool", "-") != "-"]
        tool = completed[0].data["tool"]
        n = sum(1 for e in completed if e.data["tool"] == tool)
        assert f'waferline_jobs_total{{outcome="completed",tool="{tool}"}} {float(n)}' in metrics
        assert "waferline_holds_total 1.0" in metrics
        assert 'waferline_e10_tool_seconds_total{state="productive",tool="' in metrics
        assert "waferline_job_duration_tool_seconds_bucket" in metrics
        assert 'waferline_hmi_commands_total{command="scrap",ok="false"}' not in metrics  # refused before it
        assert 'waferline_hmi_commands_total{command="hold",ok="true"} 1.0' in metrics
    finally:
        if run.poll() is None:
            run.kill()


def test_a_killed_controller_shows_as_not_running_until_resume(hmi: Hmi) -> None:
    run = hmi.start_run()
    resumed: subprocess.Popen[str] | None = None
    try:
        sam = hmi.login("sam")
        run_id = wait_for(lambda: [r["id"] for r in sam.get("/api/runs").json()["runs"]
                                   if r["state"] == "EXECUTE" and r["controller"] == "running"], "the run")[0]
        run.send_signal(signal.SIGKILL)
        run.wait(10)
        gone = wait_for(lambda: (d := sam.get(f"/api/runs/{run_id}").json())["controller"] == "not running"
                        and d, "the controller's absence")
        assert gone["state"] == "EXECUTE"  # the last journaled state, as the journal says
        assert sam.post(f"/api/runs/{run_id}/hold", json={}).status_code == 409
        resumed = subprocess.Popen([*WAFERLINE, "resume", run_id, *hmi.where()], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE, text=True, env=hmi.env)
        wait_for(lambda: sam.get(f"/api/runs/{run_id}").json()["controller"] == "running", "the resume")
        assert sam.post(f"/api/runs/{run_id}/abort", json={"confirm": True}).status_code == 200
        assert resumed.wait(60) == 5
    finally:
        for proc in (run, resumed):
            if proc is not None and proc.poll() is None:
                proc.kill()


def test_a_supervisor_scraps_a_stack_of_a_held_lot(hmi: Hmi) -> None:
    run = hmi.start_run()
    try:
        sam = hmi.login("sam")
        run_id = wait_for(lambda: [r["id"] for r in sam.get("/api/runs").json()["runs"]
                                   if r["state"] == "EXECUTE" and r["controller"] == "running"], "the run")[0]
        assert sam.post(f"/api/runs/{run_id}/hold", json={}).status_code == 200
        wait_for(lambda: sam.get(f"/api/runs/{run_id}").json()["state"] == "HELD", "HELD")
        assert sam.post(f"/api/runs/{run_id}/scrap", json={"stack": "S1"}).status_code == 400  # confirm first
        why = "wafer 1 cracked in handling"
        scrapped = sam.post(f"/api/runs/{run_id}/scrap", json={"stack": "S1", "confirm": True, "why": why})
        assert scrapped.status_code == 200, scrapped.text
        detail = wait_for(lambda: (d := sam.get(f"/api/runs/{run_id}").json())["scrapped"] and d, "the scrap")
        assert detail["scrapped"] == [f"{run_id}-S1"]
        events = read_events(hmi.runs / run_id / "journal.sqlite")
        assert any(e.kind == "stack_scrapped" and "hmi:sam (supervisor)" in e.data["who"] for e in events)
        sam.post(f"/api/runs/{run_id}/abort", json={"confirm": True})
        run.wait(60)
    finally:
        if run.poll() is None:
            run.kill()


def test_two_browsers_see_the_same_state(hmi: Hmi) -> None:
    first, second = hmi.login("alice"), hmi.login("erin")
    seen = []
    for client in (first, second):
        with client.stream("GET", "/api/events?topics=tools,runs") as events:
            lines = events.iter_lines()
            for raw in lines:
                if raw.startswith("id: "):
                    version = raw[4:]
                    data = json.loads(next(lines)[6:])
                    seen.append((version, data["tools"], data["runs"]))
                    break
    (v1, tools1, runs1), (v2, tools2, runs2) = seen
    assert (tools1, runs1) == (tools2, runs2) or v1 != v2  # one snapshot, unless it moved in between


def test_alarm_shelving_needs_an_engineer_and_never_a_safety_alarm(hmi: Hmi) -> None:
    alice, erin = hmi.login("alice"), hmi.login("erin")
    assert hmi.cli("sim", "alarm", "saw1", "900", "--endpoints", str(hmi.eps)).returncode == 0

    def open_alarm(alid: int) -> str | None:
        found = [a["key"] for a in alice.get("/api/alarms").json()["active"]
                 if a["tool"] == "saw1" and a["alarm_id"] == alid]
        return found[0] if found else None

    key = wait_for(lambda: open_alarm(900), "the saw's alarm")
    denied = alice.post(f"/api/alarms/{key}/shelve", json={"minutes": 30, "reason": "known"})
    assert denied.status_code == 403 and "needs the engineer role" in denied.json()["detail"]
    assert erin.post(f"/api/alarms/{key}/shelve", json={"minutes": 30}).status_code == 422  # no reason
    shelved = erin.post(f"/api/alarms/{key}/shelve", json={"minutes": 30, "reason": "blade change due"})
    assert shelved.status_code == 200 and shelved.json()["state"] == "SHELVED"
    assert alice.post("/api/alarms/nope:1:1/acknowledge", json={}).status_code == 404
    assert hmi.cli("tools", "reset", "saw1", *hmi.where()).returncode == 0
    assert hmi.cli("sim", "alarm", "saw1", "10", "--endpoints", str(hmi.eps)).returncode == 0  # door: safety
    safety = wait_for(lambda: open_alarm(10), "the safety alarm")
    refused = erin.post(f"/api/alarms/{safety}/shelve", json={"minutes": 30, "reason": "no"})
    assert refused.status_code == 409 and "safety alarm" in refused.json()["detail"]
    assert alice.post(f"/api/alarms/{safety}/acknowledge", json={}).status_code == 200
    again = alice.post(f"/api/alarms/{safety}/acknowledge", json={})
    assert again.status_code == 409 and "acknowledged by hmi:alice" in again.json()["detail"]
    assert hmi.cli("tools", "reset", "saw1", *hmi.where()).returncode == 0


def test_logins_are_throttled(hmi: Hmi) -> None:  # last: it locks the test client's address for a minute
    client = httpx.Client(base_url=hmi.url, timeout=10)
    codes = []
    for _ in range(6):
        csrf = client.get("/login").text.split('name="csrf" value="')[1].split('"')[0]
        form = {"user": "mallory", "password": "guess", "csrf": csrf}
        codes.append(client.post("/login", data=form).status_code)
    assert codes[:5] == [303] * 5 and codes[5] == 429


REPO = Path(__file__).resolve().parents[1]


def test_sim_up_and_run_serve_the_hmi_beside(tmp_path: Path) -> None:
    """`--hmi-port`: the HMI comes up with the line (or the run) and goes when it ends."""
    env = {**os.environ, "WAFERLINE_RUNS_DIR": str(tmp_path / "runs"), "PYTHONPATH": str(REPO),
           "WAFERLINE_HMI_USERS": str(tmp_path / "users.json")}  # cwd: its own .waferline state
    port = free_port()
    sim = subprocess.Popen([*WAFERLINE, "sim", "up", "--endpoints-file", str(tmp_path / "eps.json"),
                            "--run-dir", str(tmp_path / "sim"), "--hmi-port", str(port)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env,
                           cwd=tmp_path)
    try:
        wait_for(lambda: _answers(f"http://127.0.0.1:{port}/login"), "the HMI beside sim up", 30)
    finally:
        sim.terminate()
        sim.wait(20)
    wait_for(lambda: not _answers(f"http://127.0.0.1:{port}/login"), "the HMI to go with the line", 15)
    run = subprocess.run([*WAFERLINE, "run", "flow-c", "--hmi-port", str(port)], capture_output=True,
                         text=True, env=env, cwd=tmp_path, timeout=120)
    assert run.returncode == 0 and f"HMI on http://127.0.0.1:{port}/" in run.stdout, run.stderr
    assert not _answers(f"http://127.0.0.1:{port}/login")


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False
