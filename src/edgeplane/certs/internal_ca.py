"""The internal CA: an ECDSA P-256 root, created once, that issues 90-day leaf certificates.

It serves local and private names (``app.localhost``, ``*.test``), like a development CA:
clients trust it by installing ``GET /api/v1/infrastructure/ca.pem``. The root's key is kept in
the ``secrets`` table, encrypted with the platform's secret key.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from sqlalchemy.orm import Session

from edgeplane.secrets import SecretBox
from edgeplane.store.tables import SecretRow, utcnow

SECRET_NAME = "internal-ca"
ROOT_DAYS = 3650
LEAF_DAYS = 90
BACKDATE = timedelta(minutes=5)


@dataclass(frozen=True)
class Issued:
    cert_pem: str
    key_pem: str
    not_before: datetime
    not_after: datetime
    fingerprint: str


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


def _new_root() -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = utcnow()
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Edgeplane"),
            x509.NameAttribute(NameOID.COMMON_NAME, "Edgeplane internal root CA"),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + timedelta(days=ROOT_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode(), _key_pem(key)


class InternalCA:
    def __init__(self, cert_pem: str, key_pem: str) -> None:
        self.cert_pem = cert_pem
        self.cert = x509.load_pem_x509_certificate(cert_pem.encode())
        key = serialization.load_pem_private_key(key_pem.encode(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError("the internal CA key is not an EC key")
        self._key = key

    @classmethod
    def load_or_create(cls, session: Session, box: SecretBox) -> InternalCA:
        """The root kept in ``secrets``, created on first use (call inside a write)."""
        row = session.get(SecretRow, SECRET_NAME)
        if row is None:
            cert_pem, key_pem = _new_root()
            row = SecretRow(
                name=SECRET_NAME,
                value_encrypted=box.encrypt(key_pem),
                public=cert_pem,
                created_at=utcnow(),
            )
            session.add(row)
            session.flush()
            return cls(cert_pem, key_pem)
        return cls(row.public or "", box.decrypt(row.value_encrypted))

    @staticmethod
    def root_pem(session: Session) -> str | None:
        row = session.get(SecretRow, SECRET_NAME)
        return row.public if row is not None else None

    def issue(self, names: list[str], *, days: int = LEAF_DAYS) -> Issued:
        """A leaf certificate for ``names`` (the first is the subject), signed by the root."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = utcnow()
        sans: list[x509.GeneralName] = []
        for n in names:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(n)))
            except ValueError:
                sans.append(x509.DNSName(n))
        not_before, not_after = now - BACKDATE, now + timedelta(days=days)
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0][:64])]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()),
                critical=False,
            )
            .sign(self._key, hashes.SHA256())
        )
        return Issued(
            cert_pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
            key_pem=_key_pem(key),
            not_before=not_before.replace(microsecond=0),
            not_after=not_after.replace(microsecond=0),
            fingerprint=fingerprint(cert),
        )
