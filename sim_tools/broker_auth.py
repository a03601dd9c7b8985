"""Credentials, password files, ACLs and throwaway TLS certificates for the brokers waferline starts.

Everything lands in one directory of mode 0700 (`secrets/` of the run directory), each file 0600:
- `<user>.secret`: a generated password (random, 32 bytes), referenced as {file: PATH}, never copied;
- `amqtt.passwd` (argon2id) or `mosquitto.passwd` (PBKDF2-SHA512, mosquitto's `$7$`): hashes only;
- `ca.pem`, `broker.pem`, `broker.key`: a CA made for this broker alone and the broker's certificate
  for 127.0.0.1, ::1 and localhost. The CA's key is never written: nothing else can be signed with it.
Generated passwords are long random strings, so their hashes use light argon2 parameters: the cost
that protects a human password buys nothing against 256 random bits, and 200 tools connect at once.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import logging
import os
import secrets
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from drivers.addresses import MqttAddress
from drivers.errors import ConfigError
from drivers.line import LineConfig
from drivers.mqtt_access import amqtt_acl, line_grants
from drivers.secrets import SecretRef, write_private
from sim_tools.broker import EmbeddedBroker

log = logging.getLogger(__name__)

_ARGON2 = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)
_PBKDF2_ROUNDS = 101  # mosquitto_passwd's own default for $7$


def private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


class Credentials:
    """Users and their secrets for one broker; generated passwords are written 0600 in `directory`."""

    def __init__(self, directory: Path) -> None:
        self.directory = private_dir(directory)
        self.refs: dict[str, SecretRef] = {}

    def generate(self, user: str) -> SecretRef:
        path = self.directory / f"{user}.secret"
        write_private(path, secrets.token_urlsafe(32))
        self.refs[user] = SecretRef(file=path)
        return self.refs[user]

    def add(self, user: str, ref: SecretRef) -> SecretRef:
        """A password the line configures (resolved only to hash it)."""
        self.refs[user] = ref
        return ref

    def _resolved(self) -> list[tuple[str, str]]:
        return [(u, ref.resolve(f"mqtt broker user {u}")) for u, ref in self.refs.items()]

    def amqtt_password_file(self) -> Path:
        path = self.directory / "amqtt.passwd"
        write_private(path, "".join(f"{u}:{_ARGON2.hash(p)}\n" for u, p in self._resolved()))
        return path

    def mosquitto_password_file(self) -> Path:
        path = self.directory / "mosquitto.passwd"
        write_private(path, "".join(f"{u}:{_mosquitto_hash(p)}\n" for u, p in self._resolved()))
        return path


def _mosquitto_hash(password: str) -> str:
    salt = secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, _PBKDF2_ROUNDS)
    b64 = base64.b64encode
    return f"$7${_PBKDF2_ROUNDS}${b64(salt).decode()}${b64(digest).decode()}"


def throwaway_certificates(directory: Path, days: int = 30) -> tuple[Path, Path, Path]:
    """(ca.pem, broker.pem, broker.key): a one-off CA and a loopback server certificate it signed."""
    directory = private_dir(directory)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"waferline throwaway CA {now:%Y%m%d%H%M%S}")
                         ])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=days))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    alt = x509.SubjectAlternativeName([
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.IPAddress(ipaddress.ip_address("::1")),
        x509.DNSName("localhost")])
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(alt, critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    paths = directory / "ca.pem", directory / "broker.pem", directory / "broker.key"
    write_private(paths[0], ca.public_bytes(pem).decode())
    write_private(paths[1], cert.public_bytes(pem).decode())
    write_private(paths[2], key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()).decode())
    return paths


class EmbeddedSecurity:
    """What `start_embedded_broker` set up: the broker, the controller's address fields, and each
    MQTT tool's own login."""

    def __init__(self, broker: EmbeddedBroker, controller: dict[str, Any],
                 tools: dict[str, SecretRef]) -> None:
        self.broker, self.controller, self.tools = broker, controller, tools


async def start_embedded_broker(line: LineConfig, directory: Path, base: Path | None = None
                                ) -> EmbeddedSecurity:
    """Start amqtt for `line` with a password per tool and controller, the line's ACL and TLS."""
    cfg = line.broker
    assert cfg is not None and cfg.embedded
    if cfg.anonymous:
        log.warning("line %s: broker.anonymous: the embedded broker lets anyone on this host command "
                    "its tools", line.name)
        broker = EmbeddedBroker(cfg.host, cfg.port)
        port = await broker.start()
        return EmbeddedSecurity(broker, {**cfg.controller_address(), "port": port, "tls": False}, {})
    creds = Credentials(directory)
    controller = creds.add(cfg.username, cfg.password) if cfg.password else creds.generate(cfg.username)
    tools = {t.name: creds.generate(t.name) for t in line.tools if isinstance(t.address, MqttAddress)}
    if cfg.username in tools:
        raise ConfigError(f"line {line.name}: broker.username: {cfg.username!r} is also a tool's name; "
                          "every tool and the controller need their own user")
    certfile = keyfile = None
    ca_file = cfg.ca_file
    if cfg.tls and cfg.cert_file is not None:
        certfile, keyfile = Path(cfg.cert_file), Path(cfg.key_file or "")
    elif cfg.tls:
        ca, cert, key = throwaway_certificates(directory)
        certfile, keyfile, ca_file = cert, key, str(ca)
    broker = EmbeddedBroker(cfg.host, cfg.port, password_file=creds.amqtt_password_file(),
                            acl=amqtt_acl(line_grants(line, base)), certfile=certfile, keyfile=keyfile)
    port = await broker.start()
    address = {**cfg.controller_address(), "port": port, "password": controller, "ca_file": ca_file}
    return EmbeddedSecurity(broker, address, tools)
