"""Where ``location /`` serves a request: in place, or by a jump to a named location.

``location /`` serves the named location that most sites fall back to, with its pool named in
``proxy_pass`` or taken per site by variable (see ``dominant_location``); a request of any
other location, or of a site with a bundle, jumps to ``$edge_loc`` (``error_page 418``).
Whether it jumps is decided at render time, per site and, for sites with cache rules, per rule:
one hash lookup on ``$site_id`` (and one on ``$rule`` for a site with rules), instead of
building the location and pool names into a key per request. A jump is always correct (the
named location does the same work); serving in place is chosen only where the in-place
location is the one the request would jump to.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgeplane.node.nginx.render_cache import (
    DEFAULT_PROFILE,
    CacheProfile,
    CompiledRules,
    location_name,
)
from edgeplane.node.nginx.render_shards import Shards
from edgeplane.node.nginx.render_upstreams import ProxyProfile
from edgeplane.node.nginx.syntax import map_block
from edgeplane.protocol.config import PoolSpec, SiteSpec

# Measured with callgrind (bench/edge.py --stages instructions): a jump to a named location
# costs a cached hit about 6,500 instructions more than being served in place with a static
# proxy_pass; a proxy_pass with variables (the upstream chosen per site), about 2,900.
JUMP_COST = 6.5
VARIABLE_PASS_COST = 2.9


@dataclass(frozen=True)
class Inline:
    """What ``location /`` serves in place: a (cache, proxy) profile, with one pool named in
    its ``proxy_pass`` (``pool``) or the site's pool by variable (``pool`` None)."""

    cache: CacheProfile
    proxy: ProxyProfile
    pool: PoolSpec | None

    @property
    def location(self) -> str:
        return location_name(self.cache, self.proxy)


def _fallback(site: SiteSpec) -> CacheProfile:
    catch_all = next((r for r in site.cache_rules if r.pattern == "/*"), None)
    return CacheProfile.of(catch_all) if catch_all else DEFAULT_PROFILE


def dominant_location(sites: list[SiteSpec], pools: dict[str, PoolSpec]) -> Inline | None:
    """The named location that the most sites fall back to (their catch-all rule, else no
    rule): ``location /`` serves it in place. With one pool (or one pool holding so many of
    its sites that the others' jumps cost less than a variable ``proxy_pass`` for all), it
    names that pool; else it takes the site's pool by variable."""
    by_location: dict[tuple[CacheProfile, ProxyProfile], dict[str, int]] = {}
    for site in sites:
        pool = pools.get(site.pool) if site.pool else None
        if pool is None or site.waf is not None:  # a WAF site always jumps (render_waf)
            continue
        per_pool = by_location.setdefault((_fallback(site), ProxyProfile.of(pool)), {})
        per_pool[pool.id] = per_pool.get(pool.id, 0) + 1
    if not by_location:
        return None
    cache, proxy = min(
        by_location,
        key=lambda k: (-sum(by_location[k].values()), location_name(*k)),
    )
    per_pool = by_location[(cache, proxy)]
    total = sum(per_pool.values())
    largest = min(per_pool, key=lambda p: (-per_pool[p], p))
    others = total - per_pool[largest]
    if others * JUMP_COST <= total * VARIABLE_PASS_COST:
        return Inline(cache, proxy, pools[largest])
    return Inline(cache, proxy, None)


def jump_maps(
    inline: Inline,
    sites: list[SiteSpec],
    pools: dict[str, PoolSpec],
    compiled: CompiledRules,
    bundled: set[str],
    shards: Shards,
) -> str:
    """``$edge_jump``: 0 where ``location /`` serves the request in place, else 1.

    A site can be served in place if it has a pool (the in-place one, when ``location /`` names
    one) and no bundle. Without rules, it then is when its default location is the in-place
    one; with rules, the rule that matched decides (``$rule_jump``); a request that matched no
    rule goes to the site's default location, in place only if that is the in-place one for
    every site with rules."""
    per_site: list[tuple[str, str]] = []
    ruled_here = True  # every eligible site with rules has the in-place default location
    for site in sites:
        pool = pools.get(site.pool) if site.pool else None
        if pool is None or site.id in bundled or site.waf is not None:
            continue
        if inline.pool is not None and pool.id != inline.pool.id:
            continue
        default_here = location_name(DEFAULT_PROFILE, ProxyProfile.of(pool)) == inline.location
        if site.id in compiled.ruled:
            per_site.append((site.id, "$rule_jump"))
            ruled_here = ruled_here and default_here
        elif default_here:
            per_site.append((site.id, "0"))
    text = shards.sharded_map("$site_id", "$edge_jump", per_site, default="1")
    if any(value == "$rule_jump" for _, value in per_site):
        here = [(rk, "0") for rk, loc in sorted(compiled.rule_locations.items())
                if loc == inline.location]  # fmt: skip
        no_rule = ("", "0" if ruled_here else "1")
        text += map_block("$rule", "$rule_jump", [no_rule, *here], default="1")
    return text
