"""Custom certificates (issuer ``custom``): a user's upload, validated, then kept as a version.

``upload`` checks and keeps one for a verified domain. ``parse_upload`` takes the PEM text of
the certificates (``cert_data``) and of the private key (``key_data``) as a user pasted them
and either returns a ``ParsedUpload`` ready to be stored and served, or raises
``UploadError`` naming the field at fault and saying precisely what to fix.

The rules, checked in this order:

1. ``cert_data`` holds one or more ``CERTIFICATE`` PEM blocks (text around the blocks, such as
   openssl's ``subject=`` lines, is ignored), each a valid X.509 certificate, none twice.
2. ``key_data`` holds exactly one unencrypted private key, PKCS#8 (``PRIVATE KEY``) or
   traditional (``RSA PRIVATE KEY``, ``EC PRIVATE KEY``): RSA of 2048 bits or more, or ECDSA on
   P-256, P-384 or P-521.
3. The private key belongs to one of the certificates: that one is the leaf. It must not be a CA
   certificate (basicConstraints CA=true) and, if it restricts its extended key usage, the usage
   must include serverAuth.
4. No certificate has a weak key (RSA < 2048 bits, DSA, an EC curve other than P-256/P-384/
   P-521) and none but a self-signed root is signed with SHA-1 or MD5.
5. The order is the order a server sends: **the leaf comes first and each certificate is issued
   by the next one**, checked by signature (not by names). Certificates given in another order
   are not silently re-ordered: the upload is refused naming the first misplaced certificate and
   the expected order. A certificate that issues none of the others ("did not issue") breaks the
   chain and is refused too. The chain may stop before the root (the usual case); a root at the
   end is accepted and dropped from ``chain_pem``, since clients have it already.
6. With ``trusted_roots``, the last certificate must be one of them or be issued by one of them.
   Without it there is no trust check: self-signed certificates and private CAs are accepted.
7. Every certificate is valid now (``not_before <= now <= not_after``).
8. The leaf's subjectAltName DNS names cover ``domain``: exactly, or by a wildcard per RFC 6125
   (``*`` as the whole leftmost label, matching exactly one label: ``*.example.com`` covers
   ``www.example.com`` but neither ``example.com`` nor ``a.b.example.com``). The Common Name is
   not used, as browsers do not.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from edgeplane.certificates import versions
from edgeplane.errors import InvalidInput
from edgeplane.model.certificates import CertificateIssued
from edgeplane.model.enums import Role
from edgeplane.store.db import Tx
from edgeplane.store.tables import utcnow

ISSUER = "custom"
MAX_CERTS = 10
MIN_RSA_BITS = 2048
_CURVES: dict[str, str] = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
_KEY_LABELS = ("PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY")
_BEGIN = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----")


class UploadError(ValueError):
    """An uploaded certificate or key is refused; ``field`` is ``cert_data`` or ``key_data``."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason

    def to_invalid_input(self) -> InvalidInput:
        return InvalidInput.at(self.field, self.reason)


@dataclass(frozen=True)
class ParsedUpload:
    leaf_pem: str
    chain_pem: str  # the leaf, then the intermediates in issuing order; never the root
    key_pem: str  # PKCS#8, unencrypted
    names: tuple[str, ...]  # subjectAltName DNS names, lower-case
    not_before: datetime
    not_after: datetime
    issuer: str  # the issuer's CN, else its RFC 4514 string
    fingerprint: str  # SHA-256 of the leaf's DER, hex
    key_type: str  # "ec256", "ec384", "ec521", "rsa2048", "rsa4096", ...


@dataclass(frozen=True)
class _Block:
    number: int  # 1-based, in the text
    label: str
    text: str


PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def parse_upload(
    domain: str,
    cert_data: str,
    key_data: str,
    *,
    now: datetime | None = None,
    trusted_roots: list[x509.Certificate] | None = None,
) -> ParsedUpload:
    """Validate an uploaded certificate chain and key for ``domain`` (see the module's rules)."""
    now = datetime.now(UTC) if now is None else now
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    certs = _load_certs(cert_data)
    key = _load_key(key_data)

    leaf = _find_leaf(certs, key)
    _check_leaf_usage(leaf)
    _check_algorithms(certs)
    chain = _check_order(certs, leaf)
    if trusted_roots is not None:
        _check_trust(chain, trusted_roots)
    for cert in chain:
        _check_dates(cert, leaf, now)
    names = _dns_names(leaf)
    _check_names(_normalize(domain), names)

    served = chain[:-1] if len(chain) > 1 and _self_signed(chain[-1]) else chain
    pems = [c.public_bytes(serialization.Encoding.PEM).decode() for c in served]
    return ParsedUpload(
        leaf_pem=pems[0],
        chain_pem="".join(pems),
        key_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode(),
        names=names,
        not_before=leaf.not_valid_before_utc,
        not_after=leaf.not_valid_after_utc,
        issuer=_name_label(leaf.issuer),
        fingerprint=leaf.fingerprint(hashes.SHA256()).hex(),
        key_type=_key_type(key),
    )


# -- PEM ---------------------------------------------------------------------------------------


def _pem_blocks(field: str, text: str) -> list[_Block]:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    blocks: list[_Block] = []
    pos = 0
    while (m := _BEGIN.search(text, pos)) is not None:
        label = m.group(1)
        end = f"-----END {label}-----"
        e = text.find(end, m.end())
        if e < 0:
            raise UploadError(
                field,
                f"PEM block {len(blocks) + 1} ('-----BEGIN {label}-----') has no '{end}' line; "
                "paste the whole block",
            )
        blocks.append(_Block(len(blocks) + 1, label, text[m.start() : e + len(end)] + "\n"))
        pos = e + len(end)
    return blocks


def _headers(block: _Block) -> str:
    """The RFC 1421 headers of a block (``Proc-Type: 4,ENCRYPTED`` marks an encrypted key)."""
    lines = block.text.split("\n")[1:]
    return "\n".join(line for line in lines[:3] if ":" in line)


def _load_certs(cert_data: str) -> list[x509.Certificate]:
    field = "cert_data"
    blocks = _pem_blocks(field, cert_data)
    if not blocks:
        raise UploadError(
            field,
            "no PEM certificate found; paste the certificate as PEM text, starting with "
            "'-----BEGIN CERTIFICATE-----'",
        )
    cert_blocks = [b for b in blocks if b.label == "CERTIFICATE"]
    if not cert_blocks:
        if any("PRIVATE KEY" in b.label for b in blocks):
            raise UploadError(
                field,
                "this is a private key, not a certificate; put the certificate in cert_data "
                "and the private key in key_data",
            )
        raise UploadError(
            field,
            f"no certificate found: the text holds a '{blocks[0].label}' block; paste the "
            "certificate, starting with '-----BEGIN CERTIFICATE-----'",
        )
    for b in blocks:
        if b.label != "CERTIFICATE":
            where = "; put the private key in key_data only" if "PRIVATE KEY" in b.label else ""
            raise UploadError(
                field,
                f"PEM block {b.number} is a '{b.label}' block, not a certificate{where}",
            )
    if len(blocks) > MAX_CERTS:
        raise UploadError(
            field,
            f"{len(blocks)} certificates given, at most {MAX_CERTS} are accepted; upload the "
            "certificate and its intermediates only",
        )
    certs: list[x509.Certificate] = []
    seen: dict[bytes, int] = {}
    for b in blocks:
        try:
            cert = x509.load_pem_x509_certificate(b.text.encode())
        except ValueError:
            raise UploadError(
                field,
                f"PEM block {b.number} is not a valid certificate (it does not decode as "
                "X.509); check that it was copied completely",
            ) from None
        der = cert.public_bytes(serialization.Encoding.DER)
        if der in seen:
            raise UploadError(
                field,
                f"PEM block {b.number} repeats certificate {seen[der]} ('{_label(cert)}'); "
                "include each certificate once",
            )
        seen[der] = b.number
        certs.append(cert)
    return certs


def _load_key(key_data: str) -> PrivateKey:
    field = "key_data"
    blocks = [b for b in _pem_blocks(field, key_data) if b.label != "EC PARAMETERS"]
    if not blocks:
        raise UploadError(
            field,
            "no PEM private key found; paste the private key as PEM text, starting with "
            "'-----BEGIN PRIVATE KEY-----'",
        )
    if any(b.label == "ENCRYPTED PRIVATE KEY" or "ENCRYPTED" in _headers(b) for b in blocks):
        raise UploadError(
            field,
            "the private key is encrypted with a passphrase; upload it decrypted (for example "
            "the output of 'openssl pkey -in key.pem')",
        )
    keys = [b for b in blocks if b.label in _KEY_LABELS]
    if not keys:
        label = blocks[0].label
        if label == "CERTIFICATE":
            raise UploadError(
                field,
                "this is a certificate, not a private key; put the certificate in cert_data "
                "and the private key in key_data",
            )
        raise UploadError(
            field,
            f"unsupported private key format '{label}'; upload an unencrypted PEM key "
            "('-----BEGIN PRIVATE KEY-----', RSA or EC)",
        )
    if len(keys) > 1:
        raise UploadError(
            field,
            f"{len(keys)} private keys given; upload only the key of the certificate",
        )
    b = keys[0]
    try:
        key = serialization.load_pem_private_key(b.text.encode(), password=None)
    except TypeError:  # a password is needed after all
        raise UploadError(
            field,
            "the private key is encrypted with a passphrase; upload it decrypted (for example "
            "the output of 'openssl pkey -in key.pem')",
        ) from None
    except UnsupportedAlgorithm:
        raise UploadError(
            field, "the private key uses an unsupported algorithm; use an RSA or ECDSA key"
        ) from None
    except ValueError:
        raise UploadError(
            field,
            f"PEM block {b.number} is not a valid private key (it does not decode); check "
            "that it was copied completely",
        ) from None
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < MIN_RSA_BITS:
            raise UploadError(
                field,
                f"the private key is a weak {key.key_size}-bit RSA key; RSA keys must have at "
                f"least {MIN_RSA_BITS} bits: generate a new key (ECDSA P-256 is recommended) "
                "and have the certificate reissued",
            )
        return key
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if key.curve.name not in _CURVES:
            raise UploadError(
                field,
                f"the private key uses the EC curve {key.curve.name}, which browsers do not "
                "accept; use P-256, P-384 or P-521",
            )
        return key
    if isinstance(key, dsa.DSAPrivateKey):
        raise UploadError(
            field,
            "the private key is a DSA key, which is weak and not accepted for TLS; use an RSA "
            "(2048 bits or more) or ECDSA key",
        )
    if isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
        raise UploadError(
            field,
            "Ed25519/Ed448 keys are not supported by browsers for TLS certificates; use an RSA "
            "or ECDSA key",
        )
    raise UploadError(
        field, "the private key uses an unsupported algorithm; use an RSA or ECDSA key"
    )


# -- the leaf and the chain ----------------------------------------------------------------------


def _spki(cert: x509.Certificate) -> bytes | None:
    try:
        return cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    except (ValueError, UnsupportedAlgorithm):
        return None


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _self_signed(cert: x509.Certificate) -> bool:
    return _issued_by(cert, cert)


def _find_leaf(certs: list[x509.Certificate], key: PrivateKey) -> x509.Certificate:
    mine = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for cert in certs:
        if _spki(cert) == mine:
            return cert
    # The key belongs to none: name the certificate that should have been its own.
    issues_none = [c for c in certs if not any(o is not c and _issued_by(o, c) for o in certs)]
    leaf = issues_none[0] if len(issues_none) == 1 else certs[0]
    raise UploadError(
        "key_data",
        f"the private key does not belong to the certificate for {_label(leaf)} (public keys "
        "differ); upload the key the certificate was issued for",
    )


def _check_leaf_usage(leaf: x509.Certificate) -> None:
    try:
        ca = leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        ca = False
    if ca:
        raise UploadError(
            "cert_data",
            f"'{_label(leaf)}' is a CA certificate (basicConstraints CA=true), not a server "
            "certificate; upload the certificate issued for the domain, with its key",
        )
    try:
        eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return
    if not {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE} & set(eku):
        raise UploadError(
            "cert_data",
            f"the certificate for {_label(leaf)} is not for TLS servers (its extended key "
            "usage lacks serverAuth); have it issued as a server certificate",
        )


def _check_order(certs: list[x509.Certificate], leaf: x509.Certificate) -> list[x509.Certificate]:
    """The chain as given, if the leaf is first and each certificate is issued by the next."""
    chain = [leaf]
    rest = [c for c in certs if c is not leaf]
    while rest:
        issuer = next((c for c in rest if _issued_by(chain[-1], c)), None)
        if issuer is None:
            break
        chain.append(issuer)
        rest.remove(issuer)
    if rest:
        last = chain[-1]
        pos = next(i for i, c in enumerate(certs) if c is last)
        after = certs[pos + 1] if pos + 1 < len(certs) and certs[pos + 1] in rest else rest[0]
        raise UploadError(
            "cert_data",
            f"the chain is broken: '{_label(after)}' did not issue '{_label(last)}'; "
            "certificates must each be issued by the next",
        )
    for i, (given, expected) in enumerate(zip(certs, chain, strict=True)):
        if given is expected:
            continue
        order = ", then ".join(f"'{_label(c)}'" for c in chain[1:])
        if i == 0:
            reason = f"the leaf '{_label(leaf)}' must come first, then {order}"
        else:
            reason = (
                f"certificate {i + 1} is '{_label(given)}' but '{_label(expected)}', which "
                f"issued '{_label(chain[i - 1])}', must come next; the order is "
                f"'{_label(leaf)}', then {order}"
            )
        raise UploadError("cert_data", f"the certificates are out of order: {reason}")
    return chain


def _check_trust(chain: list[x509.Certificate], roots: list[x509.Certificate]) -> None:
    last = chain[-1]
    der = last.public_bytes(serialization.Encoding.DER)
    if any(r.public_bytes(serialization.Encoding.DER) == der for r in roots):
        return
    if any(_issued_by(last, r) for r in roots):
        return
    if _self_signed(last):
        raise UploadError(
            "cert_data",
            f"the chain does not lead to a trusted root: it ends at '{_label(last)}', a "
            "self-signed certificate that is not a trusted root CA; use a certificate from a "
            "trusted CA",
        )
    raise UploadError(
        "cert_data",
        f"the chain does not lead to a trusted root: '{_label(last)}' is issued by "
        f"'{_name_label(last.issuer)}', which is not a trusted root CA; include the missing "
        "intermediate certificates, or use a certificate from a trusted CA",
    )


def _check_algorithms(certs: list[x509.Certificate]) -> None:
    for cert in certs:
        what = _what(cert)
        try:
            public = cert.public_key()
        except (ValueError, UnsupportedAlgorithm):
            raise UploadError(
                "cert_data", f"{what} has a public key of an unsupported algorithm"
            ) from None
        if isinstance(public, rsa.RSAPublicKey) and public.key_size < MIN_RSA_BITS:
            raise UploadError(
                "cert_data",
                f"{what} has a weak {public.key_size}-bit RSA key; RSA keys must have at "
                f"least {MIN_RSA_BITS} bits: have it reissued with a stronger key",
            )
        if isinstance(public, ec.EllipticCurvePublicKey) and public.curve.name not in _CURVES:
            raise UploadError(
                "cert_data",
                f"{what} uses the EC curve {public.curve.name}, which browsers do not accept; "
                "only P-256, P-384 and P-521 are",
            )
        if isinstance(public, dsa.DSAPublicKey):
            raise UploadError(
                "cert_data",
                f"{what} has a DSA key, which is weak and not accepted for TLS; have it "
                "reissued with an RSA (2048 bits or more) or ECDSA key",
            )
        if cert.subject == cert.issuer:
            continue  # a root's own signature is never checked by clients
        try:
            algorithm = cert.signature_hash_algorithm
        except UnsupportedAlgorithm:
            raise UploadError(
                "cert_data", f"{what} is signed with an unsupported algorithm"
            ) from None
        if isinstance(algorithm, hashes.SHA1 | hashes.MD5):
            name = "SHA-1" if isinstance(algorithm, hashes.SHA1) else "MD5"
            raise UploadError(
                "cert_data",
                f"{what} is signed with {name}, which is weak and rejected by browsers; have "
                "it reissued with SHA-256",
            )


def _check_dates(cert: x509.Certificate, leaf: x509.Certificate, now: datetime) -> None:
    what = _what(cert) if cert is not leaf else f"the certificate for {_label(leaf)}"
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    if now > end:
        raise UploadError(
            "cert_data",
            f"{what} expired on {end:%Y-%m-%d} (valid until {end:%Y-%m-%d %H:%M:%S} UTC); "
            "upload a renewed certificate",
        )
    if now < start:
        raise UploadError(
            "cert_data",
            f"{what} is not valid yet: it becomes valid on {start:%Y-%m-%d} (not before "
            f"{start:%Y-%m-%d %H:%M:%S} UTC); upload it then, or check the clock of the issuer",
        )


# -- names -----------------------------------------------------------------------------------------


def _dns_names(cert: x509.Certificate) -> tuple[str, ...]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    names: list[str] = []
    for n in san.get_values_for_type(x509.DNSName):
        n = n.lower().rstrip(".")
        if n not in names:
            names.append(n)
    return tuple(names)


def _normalize(domain: str) -> str:
    domain = domain.strip().lower().rstrip(".")
    if not domain.isascii():
        with contextlib.suppress(UnicodeError):
            domain = domain.encode("idna").decode("ascii")
    return domain


def covers(pattern: str, name: str) -> bool:
    """Whether the SAN ``pattern`` covers ``name`` (RFC 6125: a wildcard is one leftmost label)."""
    if pattern == name:
        return True
    if not pattern.startswith("*.") or "*" in pattern[2:] or name.startswith("*."):
        return False
    head, _, tail = name.partition(".")
    return bool(head) and tail == pattern[2:]


def _check_names(domain: str, names: tuple[str, ...]) -> None:
    if not names:
        raise UploadError(
            "cert_data",
            f"the certificate has no DNS names (subjectAltName), so it covers no domain, not "
            f"{domain}; browsers ignore the Common Name: have it reissued with {domain} as a "
            "subjectAltName",
        )
    if any(covers(p, domain) for p in names):
        return
    hint = ""
    for p in names:
        if p.startswith("*.") and domain == p[2:]:
            hint = f" (a wildcard does not cover the bare domain: {p} covers x.{p[2:]} only)"
            break
        if p.startswith("*.") and domain.endswith("." + p[2:]):
            hint = f" (a wildcard covers exactly one label: {p} covers x.{p[2:]}, not {domain})"
            break
    raise UploadError(
        "cert_data",
        f"the certificate covers {', '.join(names)} but not {domain}{hint}",
    )


# -- labels ------------------------------------------------------------------------------------


def _name_label(name: x509.Name) -> str:
    cns = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    if cns:
        value = cns[0].value
        return value if isinstance(value, str) else value.decode(errors="replace")
    return name.rfc4514_string() or "(empty name)"


def _label(cert: x509.Certificate) -> str:
    """How a certificate is named in messages: its CN, else its first DNS name, else its DN."""
    if cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME):
        return _name_label(cert.subject)
    names = _dns_names(cert)
    return names[0] if names else _name_label(cert.subject)


def _what(cert: x509.Certificate) -> str:
    try:
        ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        ca = False
    if not ca:
        return f"the certificate for {_label(cert)}"
    kind = "root" if cert.subject == cert.issuer else "intermediate"
    return f"the {kind} certificate '{_label(cert)}'"


def _key_type(key: PrivateKey) -> str:
    if isinstance(key, rsa.RSAPrivateKey):
        return f"rsa{key.key_size}"
    return "ec" + _CURVES[key.curve.name].removeprefix("P-")


def upload(
    tx: Tx, domain: str, cert_data: str, key_data: str, *, now: datetime | None = None
) -> CertificateIssued:
    """Validate and keep a custom certificate (each refusal names the field and the reason)."""
    tx.actor.require(tx.project, Role.EDITOR)
    row = versions.verified_domain(tx, domain)
    try:
        parsed = parse_upload(row.name, cert_data, key_data, now=now or utcnow())
    except UploadError as exc:
        raise exc.to_invalid_input() from None
    cert = versions.store(
        tx,
        row,
        issuer=ISSUER,
        chain_pem=parsed.chain_pem,
        key_pem=parsed.key_pem,
        auto_renew=False,
    )
    return versions.issued(cert)
