"""Zone signing keys: ECDSA P-256 private keys in the ISC text form PowerDNS imports.

The control plane makes one key per signed zone (:func:`generate_key`) and hands the same key
to every edge node, so that a single DS record at the registrar (:func:`ds_records`) covers
the zone whichever node answers. :func:`dnskey` is the DNSKEY PowerDNS serves for the key.
"""

from __future__ import annotations

import base64
import hashlib

import dns.dnssec
import dns.dnssectypes
import dns.name
import dns.rdtypes.ANY.DNSKEY
from cryptography.hazmat.primitives.asymmetric import ec

ALGORITHM = 13  # ECDSAP256SHA256
KSK_FLAGS = 257  # zone key + secure entry point: a combined signing key
_SCALAR_BYTES = 32


class DnssecKeyError(ValueError):
    """The text is not an ISC private key of algorithm 13."""


def _isc_text(scalar: int) -> str:
    raw = scalar.to_bytes(_SCALAR_BYTES, "big")
    return (
        "Private-key-format: v1.2\n"
        f"Algorithm: {ALGORITHM} (ECDSAP256SHA256)\n"
        f"PrivateKey: {base64.b64encode(raw).decode()}\n"
    )


def generate_key() -> str:
    """A new ECDSA P-256 private key as ISC ``Private-key-format: v1.2`` text."""
    key = ec.generate_private_key(ec.SECP256R1())
    return _isc_text(key.private_numbers().private_value)


def _fields(isc_text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in isc_text.splitlines():
        name, sep, value = line.partition(":")
        if sep:
            fields[name.strip().lower()] = value.strip()
    return fields


def private_key(isc_text: str) -> ec.EllipticCurvePrivateKey:
    """The key of ISC text made by :func:`generate_key` (or by PowerDNS, ``pdnsutil``, BIND)."""
    fields = _fields(isc_text)
    algorithm = fields.get("algorithm", "").split(" ", 1)[0]
    if algorithm != str(ALGORITHM):
        raise DnssecKeyError(f"expected an algorithm {ALGORITHM} key, got {algorithm or 'none'}")
    try:
        raw = base64.b64decode(fields["privatekey"], validate=True)
    except (KeyError, ValueError) as exc:
        raise DnssecKeyError("no valid PrivateKey line in the key") from exc
    if len(raw) != _SCALAR_BYTES:
        raise DnssecKeyError(f"PrivateKey is {len(raw)} bytes, expected {_SCALAR_BYTES}")
    try:
        return ec.derive_private_key(int.from_bytes(raw, "big"), ec.SECP256R1())
    except ValueError as exc:
        raise DnssecKeyError(f"PrivateKey is not a P-256 scalar: {exc}") from exc


def dnskey(isc_text: str, flags: int = KSK_FLAGS) -> dns.rdtypes.ANY.DNSKEY.DNSKEY:
    """The DNSKEY rdata of the key's public half."""
    public = private_key(isc_text).public_key()
    return dns.dnssec.make_dnskey(public, dns.dnssectypes.Algorithm.ECDSAP256SHA256, flags)


def dnskey_text(isc_text: str, flags: int = KSK_FLAGS) -> str:
    """The DNSKEY in presentation format, as PowerDNS's API shows it (``257 3 13 <b64>``)."""
    key = dnskey(isc_text, flags)
    return f"{key.flags} {key.protocol} {key.algorithm} {base64.b64encode(key.key).decode()}"


def ds_records(zone: str, isc_text: str, flags: int = KSK_FLAGS) -> list[str]:
    """The DS records for the registrar, in presentation format (digest type 2, SHA-256)."""
    ds = dns.dnssec.make_ds(dns.name.from_text(zone), dnskey(isc_text, flags), "SHA256")
    return [ds.to_text()]


def key_id(isc_text: str) -> str:
    """A short, stable id for the key: the first 16 hex digits of the SHA-256 of its text."""
    return hashlib.sha256(isc_text.encode()).hexdigest()[:16]
