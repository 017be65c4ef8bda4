"""HTTPS origins for private-origin tests: the origins of ``origins.py`` behind TLS, each in a
process of its own, optionally requiring a client certificate (mutual TLS).

Run directly: ``python tests/integration/tls_origins.py --name a --cert FILE [--client-ca FILE
[--client-cn NAME]]`` (``--cert``: the server's key and chain in one PEM file) prints ``READY
<port>``. With ``--client-ca`` a client must present a certificate that chains to it (else the
handshake fails: the origin refuses anything else); with ``--client-cn`` its subject's common
name must also be that (the project the edge's certificate names), else the connection is
closed after the handshake. Responses add ``X-Client-CN`` (the client certificate's CN, or
``-``). The handshake is made in the connection's own thread, so a client that never
completes one does not hold up the others.

``Pki`` makes the certificates tests need: CAs, server certificates for ``127.0.0.1`` and a
name, self-signed ones (for public-key pins) and client certificates of another CA.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address
from pathlib import Path
from typing import Any

from origins import Origin, _Handler, _Server, _State

# --------------------------------------------------------------------------- certificates


@dataclass(frozen=True)
class Issued:
    cert_pem: str  # the leaf, then its issuer when not self-signed
    key_pem: str

    def write(self, path: Path) -> Path:
        path.write_text(self.key_pem + self.cert_pem)
        path.chmod(0o600)
        return path


class Pki:
    """A CA of the tests' own (``cryptography``), which issues leaves."""

    def __init__(self, name: str) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.now(UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )

    @property
    def pem(self) -> str:
        from cryptography.hazmat.primitives import serialization

        return self.cert.public_bytes(serialization.Encoding.PEM).decode()

    def issue(self, cn: str, names: tuple[str, ...] = (), *, client: bool = False) -> Issued:
        return _leaf(cn, names, client=client, issuer=(self.cert, self.key))


def self_signed(cn: str, names: tuple[str, ...] = ()) -> Issued:
    """A self-signed server certificate (a private origin pinned by its key)."""
    return _leaf(cn, names, client=False, issuer=None)


def _leaf(cn: str, names: tuple[str, ...], *, client: bool, issuer: Any) -> Issued:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    sans: list[x509.GeneralName] = []
    for n in names:
        try:
            sans.append(x509.IPAddress(ip_address(n)))
        except ValueError:
            sans.append(x509.DNSName(n))
    now = datetime.now(UTC)
    usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer[0].subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=2))
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(issuer[1] if issuer else key, hashes.SHA256())
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    if issuer:
        pem += issuer[0].public_bytes(serialization.Encoding.PEM).decode()
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return Issued(pem, key_pem)


# --------------------------------------------------------------------------- the server


class _TlsHandler(_Handler):
    client_cn = "-"

    def send_response(self, code: int, message: str | None = None) -> None:
        super().send_response(code, message)
        self.send_header("X-Client-CN", self.client_cn)


class _TlsServer(_Server):
    context: ssl.SSLContext
    require_cn: str | None = None

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        # The handshake here, in the connection's thread (not in the accept loop).
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError):
            self.shutdown_request(request)
            return
        cn = "-"
        peer = tls.getpeercert()
        if peer:
            for rdn in peer.get("subject", ()):
                for key, value in rdn:
                    if key == "commonName":
                        cn = value
        if self.require_cn is not None and cn != self.require_cn:
            self.shutdown_request(tls)
            return
        handler = type("Handler", (self.RequestHandlerClass,), {"client_cn": cn})
        try:
            handler(tls, client_address, self)
        except (OSError, ssl.SSLError):
            pass
        finally:
            self.shutdown_request(tls)


def serve(args: argparse.Namespace) -> None:
    state = _State(args.name, args.counter)
    handler = type("Handler", (_TlsHandler,), {"state": state})
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(args.cert)
    if args.client_ca:
        context.load_verify_locations(cafile=args.client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
    server = _TlsServer(("127.0.0.1", args.port), handler)
    server.context = context
    server.require_cn = args.client_cn
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    print(f"READY {server.server_address[1]}", flush=True)
    server.serve_forever(poll_interval=0.5)


# --------------------------------------------------------------------------- the test side


@dataclass
class TlsOrigin(Origin):
    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"


def start_tls_origin(
    name: str,
    cert_file: Path,
    *,
    client_ca: Path | None = None,
    client_cn: str | None = None,
    timeout: float = 5.0,
) -> TlsOrigin:
    fd, counter = tempfile.mkstemp(prefix=f"origin-{name}-", suffix=".count")
    os.close(fd)
    cmd = [sys.executable, "-u", __file__, "--name", name, "--cert", str(cert_file)]
    cmd += ["--counter", counter]
    if client_ca is not None:
        cmd += ["--client-ca", str(client_ca)]
    if client_cn is not None:
        cmd += ["--client-cn", client_cn]
    process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    line = b""
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if line.startswith(b"READY ") or not line:
            break
    if not line.startswith(b"READY "):
        process.kill()
        process.wait()
        raise RuntimeError(f"TLS origin {name} did not start")
    process.stdout.close()
    return TlsOrigin(name, int(line.split()[1]), process, Path(counter))


def tls_get(
    origin: Origin, *, ca_pem: str, client: Path | None = None, name: str = "127.0.0.1"
) -> int:
    """A request straight to ``origin`` (not through an edge): its status; raises OSError /
    ssl.SSLError when the origin refuses the connection."""
    ctx = ssl.create_default_context(cadata=ca_pem)
    if client is not None:
        ctx.load_cert_chain(client)
    with (
        socket.create_connection(("127.0.0.1", origin.port), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname=name) as tls,
    ):
        tls.sendall(b"GET /direct HTTP/1.1\r\nHost: origin\r\nConnection: close\r\n\r\n")
        head = tls.recv(64)
    if not head:
        raise ConnectionResetError("the origin closed the connection without an answer")
    return int(head.split()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--counter", type=Path)
    parser.add_argument("--cert", type=Path, required=True)
    parser.add_argument("--client-ca", type=Path)
    parser.add_argument("--client-cn")
    serve(parser.parse_args())


if __name__ == "__main__":
    main()
