"""OCSP stapling: one ``server`` block per certificate that comes with a staple.

nginx 1.22 staples only certificates it loads with its configuration, never one chosen per
handshake by variable (the shared TLS server's ``$cert_name``). So a certificate whose
``CertSpec`` carries a staple (fetched and checked by the control plane) gets a ``server`` of
its own on the HTTPS port: its SNI names, a static ``ssl_certificate`` (the same content-
addressed file, by a path relative to the release directory like the shared server's),
``ssl_stapling_file`` (the response, a content-addressed file beside it), and the same routing
as the shared server. Certificates without a staple stay on the per-handshake path.

Blocks cost: measured here (``bench/stapling.py``), each is about 0.4 MiB of nginx memory and
4-5 ms of every reload (1,000 blocks: about 420 against 11 MiB, +4.5-5 s per apply). So a
node staples at most ``NodeLocal.max_stapled`` certificates (100), the first by certificate id
(stable from one snapshot to the next); the others keep the per-handshake path, unstapled.

A block answers exactly the SNI names whose link (``render_tls.cert_links``) names its
certificate, so a handshake gets the same certificate as through the shared server. A
wildcard is left out when a name it covers is served with another certificate that has no
block (nginx would prefer the wildcard block to the default server for it).
"""

from __future__ import annotations

import base64
import binascii
import hashlib

from edgeplane.protocol.config import CertSpec, EdgeConfig

CERTS = "../../certs"  # relative to the release directory, as the shared server's path


def staple_der(cert: CertSpec) -> bytes:
    try:
        raw = base64.b64decode(cert.ocsp_staple or "", validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"certificate {cert.id[:16]}: the OCSP staple is not base64") from None
    if not raw:
        raise ValueError(f"certificate {cert.id[:16]}: the OCSP staple is empty")
    return raw


def staple_file(cert: CertSpec) -> str:
    """The staple's file name under ``certs/``: content-addressed, so a new response is a new
    file (and a new configuration, which nginx loads at reload)."""
    return hashlib.sha256(staple_der(cert)).hexdigest()[:32] + ".ocsp"


def stapled(config: EdgeConfig, limit: int) -> dict[str, CertSpec]:
    """The certificates this node staples: those with a staple, the first ``limit`` by id."""
    with_staple = sorted((c for c in config.certs if c.ocsp_staple), key=lambda c: c.id)
    return {c.id: c for c in with_staple[: max(limit, 0)]}


def staple_files(config: EdgeConfig, limit: int) -> dict[str, bytes]:
    return {staple_file(c): staple_der(c) for c in stapled(config, limit).values()}


def stapled_names(
    config: EdgeConfig, links: dict[str, str], limit: int
) -> list[tuple[CertSpec, list[str]]]:
    """Each stapled certificate and the SNI names its block answers (sorted; none: no block).
    ``links``: SNI name (lower case) -> certificate id, as the shared server serves them.
    Linear in the names."""
    chosen = stapled(config, limit)
    if not chosen:
        return []
    # Parents of the exact names served with a certificate that has no block: a wildcard over
    # one of them would take it from the shared server.
    elsewhere = set()
    for name, target in links.items():
        head, _, parent = name.partition(".")
        if target not in chosen and head and head != "*":
            elsewhere.add(parent)
    names: dict[str, list[str]] = {}
    for name, target in links.items():
        if target in chosen and not (name.startswith("*.") and name[2:] in elsewhere):
            names.setdefault(target, []).append(name)
    return [(chosen[cid], sorted(names[cid])) for cid in sorted(names)]


def server_head(bind: str, https_port: int, cert: CertSpec, names: list[str]) -> list[str]:
    """The lines that make a stapling ``server`` differ from the shared TLS one."""
    path = f"{CERTS}/{cert.id}.pem"
    return [
        f"listen {bind}:{https_port} ssl http2;",
        f"server_name {' '.join(names)};",
        f"ssl_certificate {path};",
        f"ssl_certificate_key {path};",
        "ssl_stapling on;",
        f"ssl_stapling_file {CERTS}/{staple_file(cert)};",
    ]
