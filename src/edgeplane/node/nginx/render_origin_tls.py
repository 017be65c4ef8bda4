"""TLS from the edge to a pool's origins (private origins): the proxy lines of its locations
and the CA files they trust (pure).

A pool with ``tls`` (``protocol.origin_tls.OriginTlsSpec``) gets, in the locations that proxy
to it (its proxy profile, ``render_upstreams.ProxyProfile``):

- with a client certificate: ``proxy_ssl_certificate`` and ``proxy_ssl_certificate_key``, both
  the certificate's file under ``certs/`` (key and chain, written by the engine as any
  certificate: ``render_tls.cert_files``);
- with ``verify`` ``ca`` (or ``pin`` with a CA as well): ``proxy_ssl_verify on`` and
  ``proxy_ssl_trusted_certificate`` naming a file of the release, ``origin-ca-<sha256>.pem``,
  one per distinct CA bundle; nginx then refuses (502) an origin whose chain does not lead to
  it or does not name the expected name;
- with a ``server_name``: ``proxy_ssl_name`` (SNI and the name checked); else the request's
  host, as every pool has it (``render.PROXY_SETTINGS``).

A public-key pin is not nginx's to check: the agent's health checks compare it
(``node.agent.origin_tls``) and keep a mismatching backend ``down`` in the upstream. Pools
without ``tls`` render nothing of this.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

from edgeplane.node.nginx.render_tls import cert_file
from edgeplane.node.nginx.syntax import lit
from edgeplane.protocol.config import PoolSpec
from edgeplane.protocol.origin_tls import OriginTlsSpec

VERIFY_DEPTH = 4
_CERT_ID = re.compile(r"^[0-9a-f]{16,64}$")
# Relative to the release directory, as the certificates' links are (``render.CERT_PATH``).
CERTS_DIR = "../../certs"


def ca_file(ca_pem: str) -> str:
    """The release file of a trusted CA bundle, named by its content."""
    return f"origin-ca-{hashlib.sha256(ca_pem.encode()).hexdigest()[:16]}.pem"


def origin_tls_lines(tls: OriginTlsSpec) -> tuple[str, ...]:
    lines: list[str] = []
    if tls.client_cert:
        if not _CERT_ID.match(tls.client_cert):
            raise ValueError(f"client certificate id {tls.client_cert!r} is not a hex name")
        path = f"{CERTS_DIR}/{cert_file(tls.client_cert)}"
        lines += [f"proxy_ssl_certificate {path};", f"proxy_ssl_certificate_key {path};"]
    if tls.verify in ("ca", "pin") and tls.ca_pem:
        lines += [
            "proxy_ssl_verify on;",
            f"proxy_ssl_verify_depth {VERIFY_DEPTH};",
            f"proxy_ssl_trusted_certificate {ca_file(tls.ca_pem)};",
        ]
    if tls.server_name:
        lines.append(f"proxy_ssl_name {lit(tls.server_name)};")
    return tuple(lines)


def tls_suffix(lines: tuple[str, ...]) -> str:
    """What a location's name gets for its TLS lines: ``t`` and a short hash of them."""
    return "t" + hashlib.sha256("\n".join(lines).encode()).hexdigest()[:10]


def ca_files(pools: Iterable[PoolSpec]) -> dict[str, str]:
    """The trusted CA files of ``pools`` (release file name -> PEM)."""
    out: dict[str, str] = {}
    for pool in pools:
        tls = pool.tls
        if tls is not None and tls.verify in ("ca", "pin") and tls.ca_pem:
            out[ca_file(tls.ca_pem)] = tls.ca_pem
    return dict(sorted(out.items()))
