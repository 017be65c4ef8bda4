"""The self-signed certificate nginx answers a handshake with when no certificate names the
client's SNI name (``certs/_default.pem``: key, then certificate).

Made once per node, on its first start. The ``cryptography`` library it takes is 8 MiB of
native code, in memory for the life of the process that loads it, and an agent needs it for
nothing else: so an agent that has not loaded it already makes the certificate in a child
process (``python -m edgeplane.node.nginx.default_cert`` prints the PEM).
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

MODULE = "edgeplane.node.nginx.default_cert"


def make() -> bytes:
    """A new key and its self-signed certificate, PEM (key first), made in this process."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "edgeplane default")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return key_pem + cert.public_bytes(serialization.Encoding.PEM)


def default_cert() -> bytes:
    """``make()``: here when this process has loaded ``cryptography`` already, else in a child
    process (see the module's note)."""
    if "cryptography.x509" in sys.modules:
        return make()
    done = subprocess.run(
        [sys.executable, "-m", MODULE], capture_output=True, timeout=60, check=False
    )
    if done.returncode != 0 or b"-----BEGIN CERTIFICATE-----" not in done.stdout:
        message = done.stderr.decode(errors="replace").strip().splitlines()[-1:]
        raise RuntimeError(f"the default certificate was not made: {' '.join(message)}")
    return done.stdout


if __name__ == "__main__":
    sys.stdout.buffer.write(make())
