"""MQTT over TLS with username/password, against a real mosquitto (driver and emulator both)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import pytest

from drivers.addresses import MqttAddress
from drivers.channel import Timeouts
from drivers.errors import ToolConnectionError
from drivers.kinds.sputterer import Sputterer
from drivers.profiles import MqttProfile
from drivers.secrets import SecretRef
from drivers.tool import ProcessState
from drivers.transports.mqtt import MqttChannel
from sim_tools.broker import MosquittoBroker
from sim_tools.clock import VirtualClock
from sim_tools.model import EmulatedTool
from sim_tools.physics.sputterer import SputtererPhysics
from sim_tools.servers.mqtt import MqttToolServer

pytestmark = pytest.mark.mosquitto


async def run(*argv: str) -> None:
    done = await asyncio.to_thread(subprocess.run, argv, capture_output=True, timeout=20)
    assert done.returncode == 0, done.stderr


async def test_tls_with_password(
    tmp_path: Path, clock: VirtualClock, sputterer_profile: MqttProfile
) -> None:
    for exe in ("mosquitto", "mosquitto_passwd", "openssl"):
        if shutil.which(exe) is None:
            pytest.skip(f"{exe} not installed (CI installs mosquitto via apt)")
    cert, key, pw = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "passwd"
    await run(
        "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1",
        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
    )  # fmt: skip
    await run("mosquitto_passwd", "-b", "-c", str(pw), "sputter1", "s3cret")
    broker = MosquittoBroker(
        tmp_path, password_file=pw, extra_config=[f"certfile {cert}", f"keyfile {key}"]
    )
    port = await broker.start()
    secret, wrong = tmp_path / "sputter1.secret", tmp_path / "wrong.secret"
    for path, text in ((secret, "s3cret\n"), (wrong, "wrong\n")):
        path.write_text(text)
        path.chmod(0o600)
    address = MqttAddress(
        prefix="waferline/secure/sputter1", port=port,
        username="sputter1", password=SecretRef(file=secret), tls=True, ca_file=str(cert),
    )  # fmt: skip
    emu = EmulatedTool("sputter1", SputtererPhysics(), clock)
    server = MqttToolServer(emu, sputterer_profile, address)
    quick = Timeouts(connect_s=0.5)
    good = MqttChannel("sputter1", sputterer_profile, address, Timeouts(connect_s=3))
    bad_password = MqttChannel(
        "sputter1", sputterer_profile, address.model_copy(update={"password": SecretRef(file=wrong)}), quick
    )
    plain = MqttChannel("sputter1", sputterer_profile, address.model_copy(update={"tls": False}), quick)
    try:
        await server.start()
        tool = Sputterer("sputter1", good, time_scale=20000, poll_interval_s=0.002)
        await tool.connect()
        assert (await tool.status()).state is ProcessState.IDLE
        for channel in (bad_password, plain):
            with pytest.raises(ToolConnectionError, match="cannot connect"):
                await channel.connect()
    finally:
        for channel in (good, bad_password, plain):
            await channel.close()
        await server.stop()
        await emu.close()
        await broker.stop()
