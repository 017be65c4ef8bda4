"""Certificates: content-addressed files and the SNI map that picks one per handshake."""

from __future__ import annotations

from edgeplane.node.nginx.syntax import map_block
from edgeplane.protocol.config import CertSpec, EdgeConfig

DEFAULT_CERT = "_default"  # self-signed, generated once per prefix, for unknown SNI


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
