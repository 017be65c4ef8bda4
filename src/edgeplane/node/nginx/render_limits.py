"""Per-client limits at the edge (L7 DDoS protection): what nginx applies per site, and what
it can only apply per node.

The edge serves every site from one shared ``server`` per port (``render``), so a directive
whose value nginx reads before it knows the site, or that takes no variable, cannot differ
between sites. Measured on nginx 1.22 here (``tests/integration/test_edge_ddos.py``):

- **per site**:
  - ``max_connections``: ``limit_conn`` in one zone per distinct value, keyed
    ``"$site_id:$binary_remote_addr"`` for the sites that use it and empty (not counted) for the
    others, like the rate limits (``render_access``). Refused with **503**. ``limit_conn``
    counts requests being processed, not connections: a connection that never finishes its
    header is not counted (50 such connections from one address passed a limit of 5); those
    are cut by the header timeout below.
  - ``max_header_bytes``: ``$request_length`` in the rewrite phase is the size of the request
    line and headers as received; a site's limit is a regex map over
    ``"$header_limit:$request_length"`` (one regex per distinct limit, not per site) and
    ``return 431``. Above 8 KiB on one line or 32 KiB in all nginx itself answers 400 (its
    ``large_client_header_buffers``, a node-wide setting left at its default).
  - ``max_body_bytes``: the same over ``$content_length`` with ``return 413``, before any byte of
    the body is read. A body without a length (chunked, or HTTP/2 without content-length)
    is bounded by the node's ``client_max_body_size`` only: the largest limit of the node's
    sites (at least the edge's 100 MiB).
- **per node** (the tightest value any site on the node asks for, under attack included;
  nothing is written when no site asks, so nginx's defaults stay):
  - ``client_header_timeout``: runs before the ``Host`` header is read. It bounds the whole
    header (a slowloris sending a line every second is cut at the timeout, 408), not the gap
    between two reads.
  - ``client_body_timeout``, ``send_timeout``: the gap between two reads of the body and two
    writes of the response, read from the location that serves the request (the shared
    ``location /`` or a named location shared by sites); they take no variable.
  - ``keepalive_timeout``: an idle keep-alive connection is closed after it.

A tighter value on a node costs the other sites little: a client that sends its header in
seconds, and reads its response without pausing for seconds, never meets it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from edgeplane.node.nginx.syntax import block, map_block
from edgeplane.protocol.config import ClientLimitsSpec, SiteSpec

CONN_STATUS = 503  # limit_conn's refusal (429 is the rate limit's: the agent tells them apart)
HEADER_STATUS = 431
BODY_STATUS = 413
DEFAULT_BODY_BYTES = 100 * 1024 * 1024  # base.conf's client_max_body_size: the edge's default


@dataclass(frozen=True)
class LimitsRender:
    http: str = ""  # http-level maps and zones (access.conf)
    server: list[str] = field(default_factory=list)  # lines of every server
    checks: list[str] = field(default_factory=list)  # lines of ``location /``, before routing


def greater_than(limit: int) -> str:
    """A regex (unanchored) of the decimal numbers above ``limit``, leading zeros allowed."""
    digits = str(limit)
    size = len(digits)
    alternatives = [f"[1-9][0-9]{{{size},}}"]
    for i, d in enumerate(digits):
        if d == "9":
            continue
        rest = size - i - 1
        tail = f"[0-9]{{{rest}}}" if rest else ""
        alternatives.append(f"{digits[:i]}[{int(d) + 1}-9]{tail}")
    return f"0*(?:{'|'.join(alternatives)})"


def _over_limit(name: str, value: str, limits: dict[str, int | None], default: int | None) -> str:
    """``$<name>_limit`` (site -> its limit; None: not checked) and ``$<name>_too_large`` (1
    when ``value`` is above the site's limit): one regex per distinct limit, not per site."""
    entries = [(site, str(n) if n is not None else '""') for site, n in sorted(limits.items())]
    text = map_block(
        "$site_id", f"${name}_limit", entries, default=str(default) if default else '""'
    )
    distinct = {n for n in limits.values() if n is not None} | ({default} if default else set())
    lines = ["default 0;"] + [f'"~^{n}:{greater_than(n)}$" 1;' for n in sorted(distinct)]
    return text + block(f'map "${name}_limit:{value}" ${name}_too_large', lines)


def _tightest(specs: list[ClientLimitsSpec], name: str) -> int | None:
    values = [v for v in (getattr(s, name) for s in specs) if v is not None]
    return min(values) if values else None


def render_client_limits(sites: list[SiteSpec]) -> LimitsRender:
    """The limits of ``sites`` (nothing at all when none has limits)."""
    specs = {s.id: s.client_limits for s in sites if s.client_limits is not None}
    if not specs:
        return LimitsRender()
    http = ""
    server: list[str] = []
    checks: list[str] = []
    conns: dict[int, list[str]] = {}
    for site, spec in specs.items():
        if spec.max_connections is not None:
            conns.setdefault(spec.max_connections, []).append(site)
    if conns:
        http += f"limit_conn_status {CONN_STATUS};\nlimit_conn_log_level warn;\n"
    for n, ids in sorted(conns.items()):
        zone = f"cl_{n}"
        http += map_block(
            "$site_id", f"${zone}", [(i, '"$site_id:$binary_remote_addr"') for i in ids]
        )
        http += f"limit_conn_zone ${zone} zone={zone}:10m;\n"
        server.append(f"limit_conn {zone} {n};")
    listed = list(specs.values())
    for name, directive in (
        ("header_timeout_s", "client_header_timeout"),
        ("body_timeout_s", "client_body_timeout"),
        ("send_timeout_s", "send_timeout"),
        ("keepalive_timeout_s", "keepalive_timeout"),
    ):
        value = _tightest(listed, name)
        if value is not None:
            server.append(f"{directive} {value}s;")
    headers: dict[str, int | None] = {
        s: v.max_header_bytes for s, v in specs.items() if v.max_header_bytes is not None
    }
    if headers:
        http += _over_limit("header", "$request_length", headers, None)
        checks.append(f"if ($header_too_large) {{ return {HEADER_STATUS}; }}")
    bodies = {s: v.max_body_bytes for s, v in specs.items() if v.max_body_bytes is not None}
    if bodies:
        node_max = max(DEFAULT_BODY_BYTES, *bodies.values())
        # with the node's limit raised for one site, the others keep the edge's default
        default = DEFAULT_BODY_BYTES if node_max > DEFAULT_BODY_BYTES else None
        if default is not None:
            server.append(f"client_max_body_size {node_max};")
        # a site at the node's limit needs no check (None), unless the default would apply
        checked: dict[str, int | None] = {s: n if n < node_max else None for s, n in bodies.items()}
        if default is not None or any(n is not None for n in checked.values()):
            if default is None:
                checked = {s: n for s, n in checked.items() if n is not None}
            http += _over_limit("body", "$content_length", checked, default)
            checks.append(f"if ($body_too_large) {{ return {BODY_STATUS}; }}")
    return LimitsRender(http, server, checks)


__all__ = ["LimitsRender", "greater_than", "render_client_limits"]
