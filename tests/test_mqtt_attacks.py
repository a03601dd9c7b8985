"""The three MQTT attacks of issue 11, against a line's broker as waferline sets it up: the embedded
amqtt (generated users, the line's ACL, a throwaway CA) and a real mosquitto started with a password
file, an ACL file and TLS from the same line. Attackers are real clients (mosquitto_pub, aiomqtt):
one without credentials, and one holding another tool's credentials. Each attack is refused, and the
controller's job and reads do not notice. A positive control sends the same message with the
controller's credentials and sees it work, so a refusal is the ACL's doing, not a wrong payload."""

from __future__ import annotations

import asyncio
import json
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from drivers.addresses import MqttAddress
from drivers.errors import ToolError
from drivers.factory import make_tool
from drivers.kinds.cvd import CvdRecipe
from drivers.line import LineConfig, apply_endpoints
from drivers.mqtt_access import acl_text, line_grants
from drivers.secrets import SecretRef
from drivers.tool import ProcessState
from drivers.transports.mqtt import NODELAY
from drivers.validation import validate_model
from sim_tools.broker import MosquittoBroker
from sim_tools.broker_auth import Credentials, throwaway_certificates
from sim_tools.line import EmulatedLine

PREFIX = "waferline/secure"
RECIPE = CvdRecipe(film="SiN", thickness_nm=300, deposition_temp_c=300)


def line_config(broker: dict[str, Any], tool_password: dict[str, SecretRef] | None = None) -> LineConfig:
    tools = [{"name": n, "kind": k, "profile": f"{k}-mqtt",
              "address": {"transport": "mqtt", "prefix": f"{PREFIX}/{n}"},
              "emulator": {"mqtt_password": tool_password[n]} if tool_password else {}}
             for n, k in (("sputter1", "sputterer"), ("cvd1", "cvd"))]
    return validate_model(LineConfig, {"name": "secure", "time_scale": 2000, "broker": broker,
                                       "tools": tools}, "test line")


@dataclass
class Secured:
    line: EmulatedLine
    live: LineConfig
    port: int
    ca: str
    secret: dict[str, str]  # user -> password, as an attacker who stole one would hold it


@pytest.fixture(params=["amqtt", pytest.param("mosquitto", marks=pytest.mark.mosquitto)])
async def secured(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Secured]:
    mosquitto: MosquittoBroker | None = None
    if request.param == "amqtt":
        config = line_config({"embedded": True})
    else:
        if not MosquittoBroker.available():
            pytest.skip("mosquitto not installed (CI installs it with apt-get in .ci/run)")
        creds = Credentials(tmp_path / "site-secrets")
        refs = {u: creds.generate(u) for u in ("controller", "sputter1", "cvd1")}
        ca, cert, key = throwaway_certificates(tmp_path / "site-tls")
        draft = line_config({"embedded": False, "password": refs["controller"], "ca_file": str(ca)}, refs)
        acl = tmp_path / "site.acl"
        acl.write_text(acl_text(line_grants(draft)))
        mosquitto = MosquittoBroker(tmp_path, password_file=creds.mosquitto_password_file(), acl_file=acl,
                                    extra_config=[f"certfile {cert}", f"keyfile {key}"])
        port = await mosquitto.start()
        config = line_config({"embedded": False, "port": port, "password": refs["controller"],
                              "ca_file": str(ca)}, refs)
    emulated = EmulatedLine(config, run_dir=tmp_path / "sim")
    endpoints = await emulated.start()
    try:
        live = apply_endpoints(config, endpoints)
        address = live.tools[0].address
        assert isinstance(address, MqttAddress) and address.tls and address.ca_file
        secrets_dir = tmp_path / ("sim/secrets" if mosquitto is None else "site-secrets")
        secret = {p.stem: p.read_text() for p in secrets_dir.glob("*.secret")}
        yield Secured(emulated, live, address.port, address.ca_file, secret)
    finally:
        await emulated.stop()
        if mosquitto is not None:
            await mosquitto.stop()


def start_message(job_id: int) -> bytes:
    return json.dumps({"id": "attack", "cmd": "start", "reply_to": f"{PREFIX}/sputter1/reply/attacker",
                       "args": {"job_id": job_id, **RECIPE.model_dump()}}).encode()


def mosquitto_pub(s: Secured, topic: str, payload: bytes, user: str | None
                  ) -> subprocess.CompletedProcess[str]:
    argv = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(s.port), "--cafile", s.ca, "-q", "1",
            "-t", topic, "-m", payload.decode()]
    if user is not None:
        argv += ["-u", user, "-P", s.secret[user]]
    return subprocess.run(argv, capture_output=True, text=True, timeout=20)


async def settle(s: Secured, tool: str, job_id: int) -> None:
    """Long enough for a delivered command to have started its job (polling the emulator)."""
    emu = s.line.tools[tool]
    for _ in range(40):
        if job_id in emu.job_outcomes:
            return
        await asyncio.sleep(0.025)


async def test_start_by_anyone_but_the_controller_is_refused(secured: Secured) -> None:
    if shutil.which("mosquitto_pub") is None:
        pytest.skip("mosquitto_pub not installed (CI installs mosquitto-clients)")
    topic = f"{PREFIX}/cvd1/cmd"
    anonymous = await asyncio.to_thread(mosquitto_pub, secured, topic, start_message(4242), None)
    assert anonymous.returncode != 0 and "not authori" in anonymous.stderr.lower(), anonymous
    other_tool = await asyncio.to_thread(mosquitto_pub, secured, topic, start_message(4243), "sputter1")
    await settle(secured, "cvd1", 4243)
    cvd = secured.line.tools["cvd1"]
    assert 4242 not in cvd.job_outcomes and 4243 not in cvd.job_outcomes, other_tool
    control = await asyncio.to_thread(mosquitto_pub, secured, topic, start_message(4244), "controller")
    await settle(secured, "cvd1", 4244)
    assert control.returncode == 0 and 4244 in cvd.job_outcomes, control.stderr


async def attacker(s: Secured, user: str | None) -> aiomqtt.Client:
    return aiomqtt.Client("127.0.0.1", s.port, username=user, password=s.secret.get(user or ""),
                          tls_context=ssl.create_default_context(cafile=s.ca), socket_options=NODELAY,
                          timeout=5)


async def test_anonymous_client_cannot_even_connect(secured: Secured) -> None:
    with pytest.raises(aiomqtt.MqttError):
        async with await attacker(secured, None):
            pass
    plain = aiomqtt.Client("127.0.0.1", secured.port, username="controller",
                           password=secured.secret["controller"], timeout=3)
    with pytest.raises(aiomqtt.MqttError):  # no TLS: the broker does not speak MQTT in clear
        async with plain:
            pass


async def test_abort_from_another_tool_does_not_reach_the_running_job(secured: Secured) -> None:
    tool = make_tool(secured.live.tool("cvd1"), secured.live)
    stop = asyncio.Event()

    async def flood() -> int:
        sent = 0
        async with await attacker(secured, "sputter1") as client:
            while not stop.is_set():
                await client.publish(f"{PREFIX}/cvd1/cmd", json.dumps(
                    {"id": f"a{sent}", "cmd": "abort", "args": {}, "reply_to": f"{PREFIX}/cvd1/reply/x"}),
                    qos=1)
                sent += 1
                await asyncio.sleep(0.01)
        return sent

    async with tool:
        flooding = asyncio.ensure_future(flood())
        await asyncio.sleep(0.1)
        try:
            result = await tool.run(RECIPE)
        finally:
            stop.set()
        assert await flooding > 5
    assert result.film_thickness_nm > 0  # type: ignore[attr-defined]
    assert "ABORTED" not in secured.line.tools["cvd1"].job_outcomes.values()


async def forged_reads(s: Secured, user: str) -> list[str]:
    """40 status reads of cvd1 while `user` answers every pending request first with a forged PAUSE
    and alarm 202, and retains a forged status: each read as "IDLE" (genuine) or what it got."""
    tool = make_tool(s.live.tool("cvd1"), s.live)
    emu = s.line.tools["cvd1"]
    forged = {**emu.read(list(tool.channel.profile.variables)), "state": "PAUSE", "alarm_id": 202}
    seen: list[str] = []
    async with tool, await attacker(s, user) as forger:
        channel: Any = tool.channel
        await forger.subscribe("#", qos=1)  # to learn request ids: refused by the ACL
        await forger.publish(f"{PREFIX}/cvd1/status", json.dumps(forged), qos=1, retain=True)
        stop = asyncio.Event()

        async def race() -> None:  # a white-box attacker: it knows each pending request id
            while not stop.is_set():
                for rid in list(channel._pending):
                    await forger.publish(channel.reply_topic, json.dumps(
                        {"id": rid, "ok": True, "values": forged}), qos=0)
                await asyncio.sleep(0)

        racing = asyncio.ensure_future(race())
        try:
            for _ in range(40):
                try:
                    status = await tool.status()
                    seen.append("IDLE" if status.state is ProcessState.IDLE and status.alarm is None
                                else f"{status.state} {status.alarm}")
                except ToolError as exc:
                    seen.append(f"error {exc}")
        finally:
            stop.set()
            await racing
    return seen


async def test_forged_replies_and_status_never_reach_the_controller(secured: Secured) -> None:
    assert await forged_reads(secured, "sputter1") == ["IDLE"] * 40
    # control: the tool's own login may answer its requests, so the race itself is real
    assert any(seen != "IDLE" for seen in await forged_reads(secured, "cvd1"))
    assert secured.line.tools["cvd1"].read(["state"])["state"] == "IDLE"
