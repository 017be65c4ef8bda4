"""A throwaway Pebble (the ACME test CA) for tests, with its own TLS certificate.

The Debian package ships no certificate for Pebble's HTTPS listeners, so each instance gets a
throwaway CA and a ``localhost``/``127.0.0.1`` certificate signed by it: clients trust
``Pebble.ca_bundle``. The root that signs *issued* certificates is Pebble's own, new at every
start, and comes from the management listener (``Pebble.roots_pem()``).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from processes import free_port

START_TIMEOUT = 15.0


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def write_listener_certs(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a localhost certificate it signs: (ca.pem, cert.pem, key.pem)."""
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pebble listener test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    paths = directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(_key_pem(key))
    return paths


@dataclass
class Pebble:
    """One Pebble instance: its files under ``home``, its ports on 127.0.0.1."""

    home: Path
    http_port: int
    dns_server: str
    validity_s: int | None = None
    nonce_reject: int = 0
    eab: dict[str, str] | None = None
    listen_port: int = 0
    management_port: int = 0
    tls_port: int = 0
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _log: IO[bytes] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.ca_path, self.cert_path, self.key_path = write_listener_certs(self.home / "tls")
        self._pick_ports()

    def _pick_ports(self) -> None:
        ports: set[int] = set()
        while len(ports) < 3:
            ports.add(free_port())
        self.listen_port, self.management_port, self.tls_port = sorted(ports)

    @property
    def directory_url(self) -> str:
        return f"https://127.0.0.1:{self.listen_port}/dir"

    @property
    def management_url(self) -> str:
        return f"https://127.0.0.1:{self.management_port}"

    @property
    def ca_bundle(self) -> str:
        """The CA file an ACME client must trust to talk to this Pebble over HTTPS."""
        return str(self.ca_path)

    @property
    def config_path(self) -> Path:
        return self.home / "pebble-config.json"

    @property
    def log_path(self) -> Path:
        return self.home / "pebble.log"

    def config(self) -> dict[str, Any]:
        conf: dict[str, Any] = {
            "listenAddress": f"127.0.0.1:{self.listen_port}",
            "managementListenAddress": f"127.0.0.1:{self.management_port}",
            "certificate": str(self.cert_path),
            "privateKey": str(self.key_path),
            "httpPort": self.http_port,
            "tlsPort": self.tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": self.eab is not None,
        }
        if self.eab is not None:
            conf["externalAccountMACKeys"] = dict(self.eab)
        if self.validity_s is not None:
            conf["certificateValidityPeriod"] = self.validity_s
        return {"pebble": conf}

    def log_tail(self, size: int = 4096) -> str:
        try:
            data = self.log_path.read_bytes()
        except OSError:
            return ""
        return data[-size:].decode(errors="replace")

    def _tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca_bundle)

    def _answers(self) -> bool:
        try:
            response = httpx.get(self.directory_url, verify=self._tls(), timeout=1.0)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    def start(self) -> None:
        """Start (or restart, with the same configuration and ports) and wait for the directory."""
        if self.process is not None and self.process.poll() is None:
            return
        self.config_path.write_text(json.dumps(self.config(), indent=2))
        env = dict(os.environ)
        env.update(
            PEBBLE_VA_NOSLEEP="1",
            PEBBLE_WFE_NONCEREJECT=str(self.nonce_reject),
            PEBBLE_AUTHZREUSE="0",
        )
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                "pebble",
                "-config",
                str(self.config_path),
                "-dnsserver",
                self.dns_server,
                "-strict=false",
            ],
            cwd=self.home,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self._close_log()
                raise RuntimeError(f"pebble exited at start:\n{self.log_tail()}")
            if self._answers():
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"pebble did not answer within {START_TIMEOUT}s:\n{self.log_tail()}")

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        self._close_log()

    def _management_get(self, path: str) -> str:
        response = httpx.get(self.management_url + path, verify=self._tls(), timeout=5.0)
        response.raise_for_status()
        return response.text

    def roots_pem(self) -> str:
        """The root and intermediate that sign issued certificates (new at every start)."""
        return self._management_get("/roots/0") + self._management_get("/intermediates/0")

    def root_pem(self) -> str:
        return self._management_get("/roots/0")


@contextlib.contextmanager
def running_pebble(
    tmp_path: Path,
    *,
    http_port: int,
    dns_server: str,
    validity_s: int | None = None,
    nonce_reject: int = 0,
    eab: dict[str, str] | None = None,
    name: str = "pebble",
) -> Iterator[Pebble]:
    """A started Pebble under ``tmp_path/name``, stopped even when the test fails.

    A start that fails because another process took one of the picked ports is retried once
    with fresh ports.
    """
    pebble = Pebble(
        tmp_path / name,
        http_port=http_port,
        dns_server=dns_server,
        validity_s=validity_s,
        nonce_reject=nonce_reject,
        eab=eab,
    )
    try:
        try:
            pebble.start()
        except RuntimeError as exc:
            if "address already in use" not in str(exc):
                raise
            pebble._pick_ports()
            pebble.start()
        yield pebble
    finally:
        pebble.stop()
