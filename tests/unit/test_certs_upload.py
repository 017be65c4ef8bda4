"""Validation of an uploaded (custom) certificate: chain order, key, dates, names, strength."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from edgeplane.certificates.custom import ParsedUpload, UploadError, covers, parse_upload

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
Key = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True)
class Made:
    cert: x509.Certificate
    key: Key

    @property
    def pem(self) -> str:
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()

    @property
    def key_pem(self) -> str:
        return key_pem(self.key)


def key_pem(key: Key, fmt: serialization.PrivateFormat = serialization.PrivateFormat.PKCS8) -> str:
    return key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption()).decode()


def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def make(
    cn: str,
    *,
    issuer: Made | None = None,
    key: Key | None = None,
    ca: bool = False,
    sans: tuple[str, ...] | None = None,
    not_before: datetime = NOW - timedelta(days=30),
    not_after: datetime = NOW + timedelta(days=60),
    eku: list[x509.ObjectIdentifier] | None = None,
) -> Made:
    key = key or ec_key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        names = (cn,) if sans is None else sans
        if names:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False
            )
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    cert = builder.sign(issuer.key if issuer else key, hashes.SHA256())
    return Made(cert, key)


@cache
def root() -> Made:
    return make("Test Root", ca=True, key=ec.generate_private_key(ec.SECP384R1()))


@cache
def intermediate() -> Made:
    return make("Intermediate X", issuer=root(), ca=True)


@cache
def leaf() -> Made:
    return make("example.com", issuer=intermediate(), sans=("example.com", "WWW.example.com"))


def upload(
    cert_data: str,
    key_data: str | None = None,
    *,
    domain: str = "example.com",
    trusted_roots: list[x509.Certificate] | None = None,
) -> ParsedUpload:
    return parse_upload(
        domain,
        cert_data,
        leaf().key_pem if key_data is None else key_data,
        now=NOW,
        trusted_roots=trusted_roots,
    )


def refused(
    field: str,
    cert_data: str,
    key_data: str | None = None,
    *,
    domain: str = "example.com",
    trusted_roots: list[x509.Certificate] | None = None,
) -> str:
    with pytest.raises(UploadError) as info:
        upload(cert_data, key_data, domain=domain, trusted_roots=trusted_roots)
    assert info.value.field == field, info.value
    return info.value.reason


# -- accepted ------------------------------------------------------------------------------------


def test_a_chain_in_order_is_accepted_and_described() -> None:
    got = upload(leaf().pem + intermediate().pem)
    assert got.leaf_pem == leaf().pem
    assert got.chain_pem == leaf().pem + intermediate().pem
    assert got.names == ("example.com", "www.example.com")
    assert got.not_before == NOW - timedelta(days=30)
    assert got.not_after == NOW + timedelta(days=60)
    assert got.issuer == "Intermediate X"
    assert got.fingerprint == leaf().cert.fingerprint(hashes.SHA256()).hex()
    assert len(got.fingerprint) == 64
    assert got.key_type == "ec256"
    assert got.key_pem.startswith("-----BEGIN PRIVATE KEY-----")


def test_the_root_is_dropped_and_a_trusted_root_accepted() -> None:
    full = leaf().pem + intermediate().pem + root().pem
    assert upload(full).chain_pem == leaf().pem + intermediate().pem
    roots = [root().cert]
    assert upload(full, trusted_roots=roots).chain_pem == leaf().pem + intermediate().pem
    assert upload(leaf().pem + intermediate().pem, trusted_roots=roots).issuer == "Intermediate X"


def test_crlf_text_around_blocks_and_a_traditional_rsa_key_are_accepted() -> None:
    key = rsa.generate_private_key(65537, 2048)
    cert = make("example.com", issuer=intermediate(), key=key)
    text = f"subject=CN=example.com\n{cert.pem}\nissuer=CN=Intermediate X\n{intermediate().pem}"
    got = upload(
        text.replace("\n", "\r\n"), key_pem(key, serialization.PrivateFormat.TraditionalOpenSSL)
    )
    assert got.key_type == "rsa2048"
    assert got.chain_pem == cert.pem + intermediate().pem
    assert got.key_pem.startswith("-----BEGIN PRIVATE KEY-----")


def test_a_self_signed_certificate_is_accepted_without_trusted_roots() -> None:
    own = make("example.com")
    got = upload(own.pem, own.key_pem)
    assert got.chain_pem == own.pem
    assert got.issuer == "example.com"


def test_a_wildcard_covers_one_label() -> None:
    wild = make("*.example.com", issuer=intermediate())
    assert upload(wild.pem, wild.key_pem, domain="www.example.com").names == ("*.example.com",)
    assert upload(wild.pem, wild.key_pem, domain="WWW.Example.COM.").names == ("*.example.com",)


@pytest.mark.parametrize(
    ("pattern", "name", "expected"),
    [
        ("example.com", "example.com", True),
        ("*.example.com", "a.example.com", True),
        ("*.example.com", "example.com", False),
        ("*.example.com", "a.b.example.com", False),
        ("*.example.com", "*.example.com", True),
        ("a.*.example.com", "a.b.example.com", False),
        ("*.*.example.com", "a.b.example.com", False),
        ("*.example.com", "a.example.org", False),
    ],
)
def test_covers(pattern: str, name: str, expected: bool) -> None:
    assert covers(pattern, name) is expected


# -- refused -------------------------------------------------------------------------------------


def test_a_key_of_another_certificate_is_refused() -> None:
    reason = refused("key_data", leaf().pem + intermediate().pem, key_pem(ec_key()))
    assert reason.startswith(
        "the private key does not belong to the certificate for example.com (public keys differ)"
    )
    # Out of order, the leaf is still named: the certificate that issues no other.
    reason = refused("key_data", intermediate().pem + leaf().pem, key_pem(ec_key()))
    assert "certificate for example.com (public keys differ)" in reason


def test_an_expired_certificate_is_refused() -> None:
    old = make(
        "example.com",
        issuer=intermediate(),
        not_before=datetime(2025, 10, 1, tzinfo=UTC),
        not_after=datetime(2026, 1, 1, tzinfo=UTC),
    )
    reason = refused("cert_data", old.pem + intermediate().pem, old.key_pem)
    assert reason.startswith("the certificate for example.com expired on 2026-01-01 (")
    assert "renewed" in reason


def test_an_expired_intermediate_is_refused() -> None:
    old_ca = make("Old CA", issuer=root(), ca=True, not_after=NOW - timedelta(days=1))
    cert = make("example.com", issuer=old_ca)
    reason = refused("cert_data", cert.pem + old_ca.pem, cert.key_pem)
    assert reason.startswith("the intermediate certificate 'Old CA' expired on 2026-05-31 (")


def test_a_certificate_not_yet_valid_is_refused() -> None:
    future = make(
        "example.com",
        issuer=intermediate(),
        not_before=datetime(2026, 7, 1, tzinfo=UTC),
        not_after=datetime(2026, 10, 1, tzinfo=UTC),
    )
    reason = refused("cert_data", future.pem + intermediate().pem, future.key_pem)
    assert reason.startswith("the certificate for example.com is not valid yet")
    assert "2026-07-01" in reason


def test_certificates_out_of_order_are_refused() -> None:
    reason = refused("cert_data", intermediate().pem + leaf().pem)
    assert reason == (
        "the certificates are out of order: the leaf 'example.com' must come first, "
        "then 'Intermediate X'"
    )
    reason = refused("cert_data", leaf().pem + root().pem + intermediate().pem)
    assert reason.startswith("the certificates are out of order: certificate 2 is 'Test Root'")
    assert "'Intermediate X', which issued 'example.com', must come next" in reason
    assert "'example.com', then 'Intermediate X', then 'Test Root'" in reason


def test_a_broken_chain_is_refused() -> None:
    other = make("R3", issuer=root(), ca=True)
    reason = refused("cert_data", leaf().pem + other.pem)
    assert reason == (
        "the chain is broken: 'R3' did not issue 'example.com'; "
        "certificates must each be issued by the next"
    )
    # Issuance is checked by signature: the same name with another key does not issue.
    impostor = make("Intermediate X", issuer=root(), ca=True)
    reason = refused("cert_data", leaf().pem + impostor.pem)
    assert reason.startswith("the chain is broken: 'Intermediate X' did not issue 'example.com'")
    stranger = make("Other Root", ca=True)
    reason = refused("cert_data", leaf().pem + intermediate().pem + stranger.pem)
    assert reason.startswith("the chain is broken: 'Other Root' did not issue 'Intermediate X'")


def test_a_chain_to_an_untrusted_root_is_refused() -> None:
    other_root = make("Other Root", ca=True)
    reason = refused("cert_data", leaf().pem + intermediate().pem, trusted_roots=[other_root.cert])
    assert reason.startswith(
        "the chain does not lead to a trusted root: 'Intermediate X' is issued by 'Test Root'"
    )
    own = make("example.com")
    reason = refused("cert_data", own.pem, own.key_pem, trusted_roots=[root().cert])
    assert reason.startswith(
        "the chain does not lead to a trusted root: it ends at 'example.com', a self-signed"
    )


def test_names_that_do_not_cover_the_domain_are_refused() -> None:
    cert = make("a.example", issuer=intermediate(), sans=("a.example", "*.b.example"))
    reason = refused("cert_data", cert.pem, cert.key_pem)
    assert reason == "the certificate covers a.example, *.b.example but not example.com"


def test_a_wildcard_does_not_cover_two_levels_nor_the_bare_domain() -> None:
    wild = make("*.example.com", issuer=intermediate())
    reason = refused("cert_data", wild.pem, wild.key_pem, domain="a.b.example.com")
    assert reason.startswith("the certificate covers *.example.com but not a.b.example.com")
    assert "exactly one label" in reason
    reason = refused("cert_data", wild.pem, wild.key_pem, domain="example.com")
    assert reason.startswith("the certificate covers *.example.com but not example.com")
    assert "bare domain" in reason


def test_a_certificate_without_dns_names_is_refused() -> None:
    cert = make("example.com", issuer=intermediate(), sans=())
    reason = refused("cert_data", cert.pem, cert.key_pem)
    assert reason.startswith("the certificate has no DNS names (subjectAltName)")


def test_a_weak_rsa_key_is_refused() -> None:
    weak = rsa.generate_private_key(65537, 1024)
    cert = make("example.com", issuer=intermediate(), key=weak)
    reason = refused("key_data", cert.pem, cert.key_pem)
    assert reason.startswith("the private key is a weak 1024-bit RSA key")
    assert "at least 2048 bits" in reason


def test_a_weak_intermediate_key_is_refused() -> None:
    weak_ca = make("Weak CA", issuer=root(), ca=True, key=rsa.generate_private_key(65537, 1024))
    cert = make("example.com", issuer=weak_ca)
    reason = refused("cert_data", cert.pem + weak_ca.pem, cert.key_pem)
    assert reason.startswith("the intermediate certificate 'Weak CA' has a weak 1024-bit RSA key")


def test_an_unaccepted_curve_is_refused() -> None:
    key = ec.generate_private_key(ec.SECP256K1())
    reason = refused("key_data", leaf().pem, key_pem(key))
    assert "EC curve secp256k1" in reason


def _sha1_leaf(tmp_path: Path) -> tuple[str, str]:
    """A leaf signed with SHA-1 by the intermediate: by cryptography, else by openssl."""
    key = ec_key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "example.com")])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(intermediate().cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=30))
    )
    try:
        cert = builder.sign(intermediate().key, hashes.SHA1())  # type: ignore[arg-type]
        return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem(key)
    except UnsupportedAlgorithm:
        pass
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("neither cryptography nor openssl can sign with SHA-1 here")
    (tmp_path / "ca.pem").write_text(intermediate().pem)
    (tmp_path / "ca.key").write_text(intermediate().key_pem)
    (tmp_path / "leaf.key").write_text(key_pem(key))
    run = [openssl, "req", "-new", "-key", "leaf.key", "-subj", "/CN=example.com", "-out", "csr"]
    sign = [openssl, "x509", "-req", "-in", "csr", "-CA", "ca.pem", "-CAkey", "ca.key"]
    sign += ["-CAcreateserial", "-sha1", "-days", "30", "-out", "leaf.pem"]
    try:
        for cmd in (run, sign):
            subprocess.run(cmd, cwd=tmp_path, check=True, capture_output=True, timeout=30)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
        pytest.skip("openssl refuses to sign with SHA-1 here")
    return (tmp_path / "leaf.pem").read_text(), key_pem(key)


def test_a_sha1_signature_is_refused(tmp_path: Path) -> None:
    cert_pem, key = _sha1_leaf(tmp_path)
    reason = refused("cert_data", cert_pem + intermediate().pem, key)
    assert reason.startswith("the certificate for example.com is signed with SHA-1")


def test_a_ca_certificate_as_the_leaf_is_refused() -> None:
    reason = refused("cert_data", intermediate().pem + root().pem, intermediate().key_pem)
    assert reason.startswith(
        "'Intermediate X' is a CA certificate (basicConstraints CA=true), not a server certificate"
    )


def test_a_client_certificate_is_refused() -> None:
    client = make("example.com", issuer=intermediate(), eku=[ExtendedKeyUsageOID.CLIENT_AUTH])
    reason = refused("cert_data", client.pem, client.key_pem)
    assert "lacks serverAuth" in reason


def test_garbage_certificate_text_is_refused() -> None:
    assert refused("cert_data", "hello").startswith("no PEM certificate found")
    assert refused("cert_data", "").startswith("no PEM certificate found")
    body = leaf().pem.splitlines()
    broken = "\n".join([body[0], body[1][:20] + "!!!", *body[2:]]) + "\n"
    reason = refused("cert_data", leaf().pem + broken)
    assert reason.startswith("PEM block 2 is not a valid certificate")
    reason = refused("cert_data", leaf().pem + "-----BEGIN CERTIFICATE-----\nMIIB\n")
    assert reason.startswith("PEM block 2 ('-----BEGIN CERTIFICATE-----') has no")
    reason = refused("cert_data", leaf().pem + leaf().pem)
    assert reason.startswith("PEM block 2 repeats certificate 1 ('example.com')")


def test_a_key_in_the_certificate_field_is_refused() -> None:
    reason = refused("cert_data", leaf().key_pem)
    assert reason.startswith("this is a private key, not a certificate")
    reason = refused("cert_data", leaf().pem + leaf().key_pem)
    assert reason.startswith("PEM block 2 is a 'PRIVATE KEY' block, not a certificate")


def test_garbage_key_text_is_refused() -> None:
    assert refused("key_data", leaf().pem, "secret").startswith("no PEM private key found")
    reason = refused("key_data", leaf().pem, leaf().pem)
    assert reason.startswith("this is a certificate, not a private key")
    reason = refused(
        "key_data", leaf().pem, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
    )
    assert reason.startswith("PEM block 1 is not a valid private key")
    pub = (
        leaf()
        .key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    reason = refused("key_data", leaf().pem, pub.decode())
    assert reason.startswith("unsupported private key format 'PUBLIC KEY'")
    two = leaf().key_pem + key_pem(ec_key())
    assert refused("key_data", leaf().pem, two).startswith("2 private keys given")


@pytest.mark.parametrize(
    "fmt", [serialization.PrivateFormat.PKCS8, serialization.PrivateFormat.TraditionalOpenSSL]
)
def test_an_encrypted_key_is_refused(fmt: serialization.PrivateFormat) -> None:
    encrypted = leaf().key.private_bytes(
        serialization.Encoding.PEM, fmt, serialization.BestAvailableEncryption(b"passphrase")
    )
    reason = refused("key_data", leaf().pem, encrypted.decode())
    assert reason.startswith("the private key is encrypted with a passphrase; upload it decrypted")


def test_each_refusal_has_its_own_message_and_maps_to_a_422() -> None:
    cases = [
        ("hello", None),
        (leaf().pem, key_pem(ec_key())),
        (intermediate().pem + leaf().pem, None),
        (leaf().pem + make("R3", issuer=root(), ca=True).pem, None),
    ]
    reasons = []
    for cert_data, key_data in cases:
        with pytest.raises(UploadError) as info:
            upload(cert_data, key_data)
        assert isinstance(info.value, ValueError)
        problem = info.value.to_invalid_input()
        assert problem.status == 422
        assert problem.field == info.value.field
        assert problem.message == f"{info.value.field}: {info.value.reason}" == str(info.value)
        reasons.append(info.value.reason)
    assert len(set(reasons)) == len(reasons)
