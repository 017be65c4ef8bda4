"""HTTPS names: which handshakes the edge completes, and which requests it answers on them.

- **Unknown names are refused at the handshake.** The HTTPS port's ``default_server`` has
  ``ssl_reject_handshake on``: a client whose SNI names no certificate of this edge (or that
  sends none) gets the TLS ``unrecognized_name`` alert, and no certificate at all. The shared
  TLS server lists every name that has a certificate (``server_name``, in ``tls-names.conf``;
  the stapling servers list their own). A site's name without a certificate yet keeps being
  served over HTTP, and ACME HTTP-01 answers there as before.
- **421 Misdirected Request** (RFC 9110 15.5.20) when a request's ``Host`` is not a name the
  connection's certificate and site answer for: the Host names a site other than the SNI's,
  or a name of the same site served with another certificate. This is what a browser that
  coalesced HTTP/2 connections (one certificate covering several names, a wildcard over
  several projects) needs to open the right connection. A Host with no certificate here at all
  reaches the default server, which answers 421 too.

Per request, the common case (SNI and Host the same name) costs one regex on
``"$ssl_server_name|$host"``; only a request whose names differ looks both names up.
"""

from __future__ import annotations

import hashlib

from edgeplane.node.nginx.cert_index import CertIndex
from edgeplane.node.nginx.render_shards import Shards
from edgeplane.node.nginx.render_tls import DEFAULT_CERT, served_name
from edgeplane.node.nginx.syntax import block

NAMES_FILE = "tls-names.conf"
MISDIRECTED_RETURN = 'return 421 "misdirected request\\n"'
MISDIRECTED = f"if ($sni_mismatch) {{ {MISDIRECTED_RETURN}; }}"


def served_with_cert(links: dict[str, str], stapled: set[str]) -> list[str]:
    """The names the shared TLS server completes handshakes for (sorted)."""
    return sorted(p for p, cert in links.items() if cert != DEFAULT_CERT and p not in stapled)


def names_file(names: list[str]) -> str:
    if not names:
        return "server_name _;  # no certificate yet: every handshake is refused\n"
    return "".join(f"server_name {name};\n" for name in names)


def mismatch_maps(
    links: dict[str, str], host_site: dict[str, str], index: CertIndex, shards: Shards
) -> str:
    """``$sni_mismatch``: 1 when the Host is not answered on this connection (see above).

    A name's owner is its site and its certificate, the latter named by the certificate's
    names (a renewal keeps them: the maps, and the configuration, stay the same)."""
    groups: dict[str, str] = {}
    owners: dict[str, str] = {}
    for pattern, cert in links.items():
        if cert == DEFAULT_CERT:
            continue
        group = groups.get(cert)
        if group is None:
            names = "|".join(sorted(served_name(n) for n in index.by_id[cert].names))
            group = groups[cert] = hashlib.sha256(names.encode()).hexdigest()[:12]
        owners[pattern] = f"{host_site.get(pattern, '')}/{group}"
    text = block(
        'map "$ssl_server_name|$host" $sni_mismatch',
        ["default $sni_owners_differ;", r"~^([^|]*)\|\1$ 0;", r"~^\| 0;"],
    )
    text += block(
        'map "$sni_owner|$host_owner" $sni_owners_differ',
        ["default 1;", r"~^([^|]+)\|\1$ 0;"],
    )
    text += shards.sharded_map("$ssl_server_name", "$sni_owner", owners, hostnames=True, quote=True)
    text += shards.sharded_map("$host", "$host_owner", owners, hostnames=True, quote=True)
    return text


def reject_server(bind: str, port: int) -> str:
    """The HTTPS port's default server: no certificate, every handshake refused; a request
    that reaches it (a Host with no certificate on a connection made for another name)
    answers 421."""
    lines = [
        f"listen {bind}:{port} ssl http2 default_server;",
        "ssl_reject_handshake on;",
        'set $edge_source "";',
        "include headers.conf;",
        block(
            "location /",
            ["include headers.conf;", "default_type text/plain;", f"{MISDIRECTED_RETURN};"],
        ).rstrip("\n"),
    ]
    return "# names without a certificate here: refused (unrecognized_name)\n" + block(
        "server", lines
    )
