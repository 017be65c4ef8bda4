"""Where ``location /`` serves a request: in place, or by a jump to a named location.

``location /`` serves the (cache profile, pool) that most sites fall back to with a static
``proxy_pass``; a request of any other (profile, pool), or of a site with a bundle, jumps to
``$edge_loc`` (``error_page 418``). Whether it jumps is decided at render time per site, and per
rule for sites with cache rules: one hash lookup on ``$site_id`` (and one on ``$rule`` for a
site with rules), instead of building ``"$edge_loc|$site_upstream"`` and looking that up per
request. A jump is always correct (the named location does the same work); serving in place is
chosen only where the in-place location is the one the request would jump to.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgeplane.node.nginx.render_cache import (
    DEFAULT_PROFILE,
    CacheProfile,
    CompiledRules,
    location_name,
)
from edgeplane.node.nginx.render_upstreams import ProxyProfile
from edgeplane.node.nginx.syntax import map_block
from edgeplane.protocol.config import PoolSpec, SiteSpec


@dataclass(frozen=True)
class Inline:
    """What ``location /`` serves in place: a (cache, proxy) profile with one pool."""

    cache: CacheProfile
    proxy: ProxyProfile
    pool: PoolSpec

    @property
    def location(self) -> str:
        return location_name(self.cache, self.proxy)


def dominant_location(sites: list[SiteSpec], pools: dict[str, PoolSpec]) -> Inline | None:
    """The (cache profile, pool) that the most sites fall back to (their catch-all rule, else
    no rule): ``location /`` serves it in place, without the jump to a named location."""
    count: dict[tuple[CacheProfile, str], int] = {}
    for site in sites:
        pool = pools.get(site.pool) if site.pool else None
        if pool is None:
            continue
        catch_all = next((r for r in site.cache_rules if r.pattern == "/*"), None)
        key = (CacheProfile.of(catch_all) if catch_all else DEFAULT_PROFILE, pool.id)
        count[key] = count.get(key, 0) + 1
    if not count:
        return None
    cache, pool_id = min(count, key=lambda k: (-count[k], k[1], k[0].name))
    pool = pools[pool_id]
    return Inline(cache, ProxyProfile.of(pool), pool)


def jump_maps(
    inline: Inline, sites: list[SiteSpec], compiled: CompiledRules, bundled: set[str]
) -> str:
    """``$edge_jump``: 0 where ``location /`` serves the request in place, else 1.

    A site jumps unless its pool is the in-place one and it has no bundle. Without rules, it
    then serves in place when its default profile is the in-place one; with rules, the rule
    that matched decides (``$rule_jump``; no match: the default profile again)."""
    default_here = "0" if location_name(DEFAULT_PROFILE, inline.proxy) == inline.location else "1"
    per_site: list[tuple[str, str]] = []
    for site in sites:
        if site.pool != inline.pool.id or site.id in bundled:
            continue
        if site.id in compiled.ruled:
            per_site.append((site.id, "$rule_jump"))
        elif default_here == "0":
            per_site.append((site.id, "0"))
    text = map_block("$site_id", "$edge_jump", per_site, default="1")
    if any(value == "$rule_jump" for _, value in per_site):
        here = [(rk, "0") for rk, loc in sorted(compiled.rule_locations.items())
                if loc == inline.location]  # fmt: skip
        text += map_block("$rule", "$rule_jump", [("", default_here), *here], default="1")
    return text
