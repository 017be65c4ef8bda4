"""Certificates: content-addressed files and the SNI map that picks one per handshake; the TLS
session ticket keys (files named by their id, the first one encrypts)."""

from __future__ import annotations

import base64
import binascii
import re

from edgeplane.node.nginx.syntax import map_block
from edgeplane.protocol.config import CertSpec, EdgeConfig, TicketKeySpec

DEFAULT_CERT = "_default"  # self-signed, generated once per prefix, for unknown SNI
TICKET_KEY_BYTES = (48, 80)  # the sizes nginx accepts (AES-128 / AES-256 tickets)
_KEY_ID = re.compile(r"^[0-9a-f]{8,64}$")


def name_matches(pattern: str, host: str) -> bool:
    """A certificate name (exact or ``*.wildcard``, one label) covers ``host``."""
    pattern, host = pattern.lower(), host.lower()
    if pattern.startswith("*."):
        head, _, rest = host.partition(".")
        return bool(head) and rest == pattern[2:]
    return pattern == host


def _preferred(certs: list[CertSpec]) -> CertSpec:
    return max(certs, key=lambda c: (c.not_after, c.id))


def cert_for_names(config: EdgeConfig) -> dict[str, str]:
    """SNI name (as written in certificates) -> certificate id (the latest if several)."""
    by_name: dict[str, list[CertSpec]] = {}
    for cert in config.certs:
        for name in cert.names:
            by_name.setdefault(name.lower(), []).append(cert)
    return {name: _preferred(certs).id for name, certs in sorted(by_name.items())}


def has_cert(config: EdgeConfig, host: str) -> bool:
    return any(name_matches(n, host) for c in config.certs for n in c.names)


def cert_map(config: EdgeConfig) -> str:
    entries = [(name, cert_id) for name, cert_id in cert_for_names(config).items()]
    return map_block(
        "$ssl_server_name", "$cert_name", entries, default=DEFAULT_CERT, hostnames=True
    )


def cert_files(config: EdgeConfig) -> dict[str, bytes]:
    """``<id>.crt`` / ``<id>.key`` for every certificate (written under ``prefix/certs/``)."""
    files: dict[str, bytes] = {}
    for cert in sorted(config.certs, key=lambda c: c.id):
        if not cert.id.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"certificate id {cert.id!r} is not a plain name")
        files[f"{cert.id}.crt"] = cert.cert_pem.encode()
        files[f"{cert.id}.key"] = cert.key_pem.encode()
    return files


def ticket_key_bytes(spec: TicketKeySpec) -> bytes:
    if not _KEY_ID.match(spec.id):
        raise ValueError(f"ticket key id {spec.id!r} is not a hex name")
    try:
        raw = base64.b64decode(spec.key, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"ticket key {spec.id}: not base64") from None
    if len(raw) not in TICKET_KEY_BYTES:
        raise ValueError(f"ticket key {spec.id}: {len(raw)} bytes, nginx takes 48 or 80")
    return raw


def ticket_files(config: EdgeConfig) -> dict[str, bytes]:
    """``<id>.key`` for every session ticket key (written under ``prefix/tickets/``)."""
    return {f"{k.id}.key": ticket_key_bytes(k) for k in config.ticket_keys}


def ssl_session_lines(config: EdgeConfig, tickets_dir: str) -> str:
    """Session resumption: the shared cache of this node, and tickets when the control plane
    sent keys (the same on every node: a client resumes on any of them)."""
    text = "ssl_session_cache shared:edge_tls:10m;\nssl_session_timeout 1h;\n"
    if not config.ticket_keys:
        return text + "ssl_session_tickets off;\n"
    text += "ssl_session_tickets on;\n"
    for key in config.ticket_keys:  # the first encrypts, every one decrypts
        ticket_key_bytes(key)
        text += f"ssl_session_ticket_key {tickets_dir}/{key.id}.key;\n"
    return text
