"""Per-site access control at the edge: IP allow / deny lists and rate limits.

Allow / deny lists are one ``geo`` block per site, selected by ``map $site_id $acl_blocked``
(a deny entry wins over an allow entry of the same length; with an allow list every other
address is refused). Rate limits are one ``limit_req_zone`` per distinct (rate, burst), keyed
``"$site_id:$binary_remote_addr"`` for the sites that use it and empty (not counted) for others.
"""

from __future__ import annotations

import ipaddress

from edgeplane.node.nginx.syntax import block, map_block
from edgeplane.protocol.config import SiteSpec


def _net(value: str) -> str:
    return str(ipaddress.ip_network(value, strict=False))


def render_acl(sites: list[SiteSpec]) -> str:
    out = ""
    selectors: list[tuple[str, str]] = []
    for n, site in enumerate(s for s in sites if s.ip_allow or s.ip_deny):
        lines = [f"default {1 if site.ip_allow else 0};"]
        deny = {_net(x) for x in site.ip_deny}
        lines += [f"{net} 0;" for net in sorted({_net(x) for x in site.ip_allow} - deny)]
        lines += [f"{net} 1;" for net in sorted(deny)]
        out += f"# site {site.id}\n" + block(f"geo $acl_{n}", lines)
        selectors.append((site.id, f"$acl_{n}"))
    out += map_block("$site_id", "$acl_blocked", selectors, default="0")
    return out


def rate_zone(rate: int, burst: int) -> str:
    return f"rl_{rate}r_b{burst}"


def render_rate_limits(sites: list[SiteSpec]) -> tuple[str, list[str]]:
    """(http-level maps and zones, server-level ``limit_req`` lines)."""
    zones: dict[tuple[int, int], list[str]] = {}
    for site in sites:
        if site.rate_limit:
            key = (site.rate_limit.rate, site.rate_limit.burst)
            zones.setdefault(key, []).append(site.id)
    http = "limit_req_status 429;\nlimit_req_log_level warn;\n"
    server: list[str] = []
    for (rate, burst), ids in sorted(zones.items()):
        zone = rate_zone(rate, burst)
        http += map_block(
            "$site_id", f"${zone}", [(i, '"$site_id:$binary_remote_addr"') for i in ids]
        )
        http += f"limit_req_zone ${zone} zone={zone}:10m rate={rate}r/s;\n"
        server.append(
            f"limit_req zone={zone} burst={burst} nodelay;" if burst else f"limit_req zone={zone};"
        )
    return http, server
