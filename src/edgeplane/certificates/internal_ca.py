"""The internal CA: an ECDSA P-256 root and an intermediate under it, created once; the
intermediate issues 90-day leaf certificates.

It serves local and private names (``app.localhost``, ``*.test``), like a development CA:
clients trust the root by installing ``GET /api/v1/infrastructure/ca.pem`` (``edgeplane ca
export``); servers send the leaf followed by the intermediate. Both keys are kept in the
``secrets`` table, encrypted with the platform's secret key; the root's key is used only to
sign the intermediate.

An installation whose root exists but whose intermediate does not (made before there was one,
or deleted) gets an intermediate on first use; one that has expired, would expire before a new
leaf, or was not issued by the root is replaced the same way. The root stays the same.

Roots made before the intermediate existed have ``pathLen 0``: they may not certify another
CA (verifiers refuse such a chain), so such a root keeps signing leaves itself.

Client certificates (the edge's, presented to private origins: ``issue_client``) come from a
second intermediate under the same root, ``internal-ca-client``, whose extended key usage is
``clientAuth`` (the server intermediate's ``serverAuth`` would make verifiers refuse a client
chain through it). An origin that trusts the root accepts them; the subject names the project
(``CN=<project>, OU=origin client, O=Edgeplane``), which an origin checks to accept its own
project's edge traffic only.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID
from sqlalchemy.orm import Session

from edgeplane.certificates.versions import fingerprint
from edgeplane.secrets import SecretBox
from edgeplane.store.tables import SecretRow, utcnow

SECRET_NAME = "internal-ca"
INTERMEDIATE_SECRET_NAME = "internal-ca-intermediate"
CLIENT_INTERMEDIATE_SECRET_NAME = "internal-ca-client"
CLIENT_OU = "origin client"
ROOT_DAYS = 3650
INTERMEDIATE_DAYS = 1825
LEAF_DAYS = 90
BACKDATE = timedelta(minutes=5)


@dataclass(frozen=True)
class Issued:
    """A leaf: ``cert_pem`` is the chain a server sends (the leaf, then the intermediate);
    ``fingerprint`` is the leaf's."""

    cert_pem: str
    key_pem: str
    not_before: datetime
    not_after: datetime
    fingerprint: str
    serial: int = 0


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _load_key(key_pem: str) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("the internal CA key is not an EC key")
    return key


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _ca_name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Edgeplane"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


_CA_KEY_USAGE = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=True,
    crl_sign=True,
    encipher_only=False,
    decipher_only=False,
)


def _new_root() -> tuple[str, str]:
    """A self-signed root for 10 years that may certify one level of CA (the intermediate)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = utcnow()
    name = _ca_name("Edgeplane internal root CA")
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + timedelta(days=ROOT_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
        .add_extension(_CA_KEY_USAGE, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return _pem(cert), _key_pem(key)


def _new_intermediate(
    root: x509.Certificate,
    root_key: ec.EllipticCurvePrivateKey,
    *,
    client: bool = False,
) -> tuple[str, str]:
    """An intermediate for 5 years (never past the root), signed by the root, that signs leaves
    (server leaves, or with ``client`` client leaves)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = utcnow()
    not_after = min(now + timedelta(days=INTERMEDIATE_DAYS), root.not_valid_after_utc)
    usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
    name = "Edgeplane internal client CA" if client else "Edgeplane internal intermediate CA"
    cert = (
        x509.CertificateBuilder()
        .subject_name(_ca_name(name))
        .issuer_name(root.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_CA_KEY_USAGE, critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()),
            critical=False,
        )
        .sign(root_key, hashes.SHA256())
    )
    return _pem(cert), _key_pem(key)


def _path_length(cert: x509.Certificate) -> int | None:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length
    except x509.ExtensionNotFound:
        return None


def _can_certify_a_ca(root: x509.Certificate) -> bool:
    """False for the roots made before the intermediate existed (``pathLen 0``)."""
    path_length = _path_length(root)
    return path_length is None or path_length >= 1


def _usable(intermediate: x509.Certificate, root: x509.Certificate, days: int) -> bool:
    """Issued by ``root``, and valid long enough for a leaf of ``days`` days."""
    try:
        intermediate.verify_directly_issued_by(root)
    except (ValueError, TypeError, InvalidSignature):
        return False
    now = utcnow()
    return (
        intermediate.not_valid_before_utc <= now
        and intermediate.not_valid_after_utc >= now + timedelta(days=days)
    )


class InternalCA:
    """The root (``cert``, ``cert_pem``: what clients trust) and the CA that signs leaves
    (``intermediate``; the root itself only for a legacy ``pathLen 0`` root)."""

    def __init__(
        self,
        cert_pem: str,
        key_pem: str,
        intermediate_pem: str | None = None,
        intermediate_key_pem: str | None = None,
    ) -> None:
        self.cert_pem = cert_pem
        self.cert = x509.load_pem_x509_certificate(cert_pem.encode())
        self._key = _load_key(key_pem)
        if (intermediate_pem is None) != (intermediate_key_pem is None):
            raise ValueError("give both the intermediate's certificate and its key, or neither")
        self.intermediate_pem = intermediate_pem
        self.intermediate: x509.Certificate | None = None
        self._intermediate_key: ec.EllipticCurvePrivateKey | None = None
        if intermediate_pem is not None and intermediate_key_pem is not None:
            self.intermediate = x509.load_pem_x509_certificate(intermediate_pem.encode())
            self._intermediate_key = _load_key(intermediate_key_pem)

    @classmethod
    def load_or_create(
        cls, session: Session, box: SecretBox, *, days: int = LEAF_DAYS
    ) -> InternalCA:
        """The root and the intermediate kept in ``secrets``, each created on first use (the
        intermediate also replaced when it could not sign a leaf of ``days`` days). Call inside
        a write, holding the ``secrets``/``internal-ca`` lock."""
        root_row = session.get(SecretRow, SECRET_NAME)
        if root_row is None:
            root_pem, root_key_pem = _new_root()
            root_row = SecretRow(
                name=SECRET_NAME,
                value_encrypted=box.encrypt(root_key_pem),
                public=root_pem,
                created_at=utcnow(),
            )
            session.add(root_row)
        else:
            root_pem, root_key_pem = root_row.public or "", box.decrypt(root_row.value_encrypted)
        root = x509.load_pem_x509_certificate(root_pem.encode())
        if not _can_certify_a_ca(root):
            session.flush()
            return cls(root_pem, root_key_pem)

        row = session.get(SecretRow, INTERMEDIATE_SECRET_NAME)
        if row is not None and row.public:
            current = x509.load_pem_x509_certificate(row.public.encode())
            if _usable(current, root, days):
                session.flush()
                return cls(root_pem, root_key_pem, row.public, box.decrypt(row.value_encrypted))
        pem, key_pem = _new_intermediate(root, _load_key(root_key_pem))
        if row is None:
            row = SecretRow(name=INTERMEDIATE_SECRET_NAME, value_encrypted="")
            session.add(row)
        row.value_encrypted = box.encrypt(key_pem)
        row.public = pem
        row.created_at = utcnow()
        session.flush()
        return cls(root_pem, root_key_pem, pem, key_pem)

    @classmethod
    def load(cls, session: Session, box: SecretBox) -> InternalCA | None:
        """The CA as stored, without creating anything (None before its first use): what its
        OCSP responder signs with."""
        root_row = session.get(SecretRow, SECRET_NAME)
        if root_row is None or not root_row.public:
            return None
        row = session.get(SecretRow, INTERMEDIATE_SECRET_NAME)
        if row is None or not row.public:
            return cls(root_row.public, box.decrypt(root_row.value_encrypted))
        return cls(
            root_row.public,
            box.decrypt(root_row.value_encrypted),
            row.public,
            box.decrypt(row.value_encrypted),
        )

    def signers(self) -> list[tuple[x509.Certificate, ec.EllipticCurvePrivateKey]]:
        """The CA certificates that sign leaves, with their keys (the intermediate, and the
        root, which signed the leaves of a legacy installation)."""
        out: list[tuple[x509.Certificate, ec.EllipticCurvePrivateKey]] = []
        if self.intermediate is not None and self._intermediate_key is not None:
            out.append((self.intermediate, self._intermediate_key))
        out.append((self.cert, self._key))
        return out

    @staticmethod
    def root_pem(session: Session) -> str | None:
        row = session.get(SecretRow, SECRET_NAME)
        return row.public if row is not None else None

    def issue(
        self,
        names: list[str],
        *,
        days: int = LEAF_DAYS,
        ocsp_url: str | None = None,
        key_pem: str | None = None,
    ) -> Issued:
        """A leaf certificate for ``names`` (the first is the subject; IP addresses become IP
        names), signed by the intermediate; ``cert_pem`` is the leaf then the intermediate.
        With ``ocsp_url`` the leaf names the CA's OCSP responder (Authority Information
        Access), so that the edge can staple its status. With ``key_pem`` (a P-256 key) the
        leaf certifies that key (a renewal keeps its key), else a new one."""
        issuer, issuer_key = self.signers()[0]  # a legacy pathLen 0 root signs leaves itself
        key = _load_key(key_pem) if key_pem else ec.generate_private_key(ec.SECP256R1())
        now = utcnow()
        sans: list[x509.GeneralName] = []
        for n in names:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(n)))
            except ValueError:
                sans.append(x509.DNSName(n))
        not_before = now - BACKDATE
        not_after = min(now + timedelta(days=days), issuer.not_valid_after_utc)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0][:64])]))
            .issuer_name(issuer.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                critical=False,
            )
        )
        if ocsp_url:
            access = x509.AccessDescription(
                AuthorityInformationAccessOID.OCSP, x509.UniformResourceIdentifier(ocsp_url)
            )
            builder = builder.add_extension(
                x509.AuthorityInformationAccess([access]), critical=False
            )
        cert = builder.sign(issuer_key, hashes.SHA256())
        chain = _pem(cert) + (self.intermediate_pem or "")
        return Issued(
            cert_pem=chain,
            key_pem=_key_pem(key),
            not_before=not_before.replace(microsecond=0),
            not_after=not_after.replace(microsecond=0),
            fingerprint=fingerprint(cert),
            serial=cert.serial_number,
        )

    def client_signer(self, session: Session, box: SecretBox, *, days: int) -> ClientSigner:
        """The CA that signs client certificates: the client intermediate kept in ``secrets``
        (created on first use, replaced when it could not sign a leaf of ``days`` days), or a
        legacy ``pathLen 0`` root itself. Call inside a write holding the CA's lock."""
        if not _can_certify_a_ca(self.cert):
            return ClientSigner(self.cert, self._key, "")
        row = session.get(SecretRow, CLIENT_INTERMEDIATE_SECRET_NAME)
        if row is not None and row.public:
            current = x509.load_pem_x509_certificate(row.public.encode())
            if _usable(current, self.cert, days):
                return ClientSigner(
                    current, _load_key(box.decrypt(row.value_encrypted)), row.public
                )
        pem, key_pem = _new_intermediate(self.cert, self._key, client=True)
        if row is None:
            row = SecretRow(name=CLIENT_INTERMEDIATE_SECRET_NAME, value_encrypted="")
            session.add(row)
        row.value_encrypted = box.encrypt(key_pem)
        row.public = pem
        row.created_at = utcnow()
        session.flush()
        return ClientSigner(x509.load_pem_x509_certificate(pem.encode()), _load_key(key_pem), pem)


@dataclass(frozen=True)
class ClientSigner:
    """The CA certificate that signs client leaves, its key, and the PEM sent after a leaf
    ("" when the root signs them itself)."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    chain_pem: str

    def issue(self, project: str, *, days: int) -> Issued:
        """A client certificate (``clientAuth``) naming ``project``: ``CN=<project>, OU=origin
        client, O=Edgeplane``, and the URI ``edgeplane:project:<project>``."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = utcnow()
        not_before = now - BACKDATE
        not_after = min(now + timedelta(days=days), self.cert.not_valid_after_utc)
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Edgeplane"),
                x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, CLIENT_OU),
                x509.NameAttribute(NameOID.COMMON_NAME, project[:64]),
            ]
        )
        usage = x509.KeyUsage(
            digital_signature=True,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=False,
            crl_sign=False,
            encipher_only=False,
            decipher_only=False,
        )
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.UniformResourceIdentifier(f"edgeplane:project:{project}")]
                ),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(usage, critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        return Issued(
            cert_pem=_pem(cert) + self.chain_pem,
            key_pem=_key_pem(key),
            not_before=not_before.replace(microsecond=0),
            not_after=not_after.replace(microsecond=0),
            fingerprint=fingerprint(cert),
            serial=cert.serial_number,
        )
