"""Cache rules compiled into O(1) nginx maps (first match wins) and named-location profiles.

Each site's ordered patterns become entries of up to four hash maps (exact path, first path
segment, first two segments, extension) whose values are the first rule of the site with that
key, and one combination map keyed by their answers that resolves the first matching rule. The
rule selects a named location per distinct cache profile (TTL, honour/override, stale flags),
which is combined with the pool's proxy profile; and the cache key parts (host, query, extra).

What a request pays is only what the snapshot needs: a site without rules resolves ``$rule`` to
"" by one hash lookup on ``$site_id`` (the maps of the rules are never evaluated for it), a kind
of pattern no site uses has no map (and no regex), and without any rule at all there are no rule
maps and the cache key is a plain string of variables (``CACHE_KEY_PLAIN``, the same key); with
rules, only the sites whose rules change a part of the key build it from ``$key_*`` maps.

Rule keys are ``"<site id>#<n>"`` (``n`` counts from 1 in the site's order).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from edgeplane.node.nginx.render_upstreams import ProxyProfile
from edgeplane.node.nginx.syntax import lit, map_block
from edgeplane.protocol.config import CacheKeySpec, CacheRuleSpec

OVERRIDE_IGNORE = "proxy_ignore_headers Cache-Control Expires X-Accel-Expires Vary;"
STALE_ON_ERROR = "error timeout http_500 http_502 http_503 http_504"


@dataclass(frozen=True, order=True)
class CacheProfile:
    """What a named location does with the cache."""

    bypass: bool = False
    ttl: int | None = None  # None: only what the origin's headers say
    honour: bool = True  # honour the origin's Cache-Control / Expires (the TTL is a fallback)
    stale_if_error: bool = True
    stale_while_revalidate: bool = False

    @staticmethod
    def of(rule: CacheRuleSpec) -> CacheProfile:
        if rule.bypass:
            return CacheProfile(bypass=True, stale_if_error=False)
        return CacheProfile(
            ttl=rule.ttl,
            honour=rule.origin_cache_control == "honour",
            stale_if_error=rule.stale_if_error,
            stale_while_revalidate=rule.stale_while_revalidate,
        )

    @property
    def name(self) -> str:
        if self.bypass:
            return "bypass"
        parts = ["origin" if self.ttl is None else f"t{self.ttl}"]
        parts.append("honour" if self.honour else "override")
        if self.stale_if_error:
            parts.append("sie")
        if self.stale_while_revalidate:
            parts.append("swr")
        return "_".join(parts)

    def lines(self, hop: bool = False) -> list[str]:
        """``hop``: the location's misses go through the origin hop (``render_hop``), which
        tells nginx per response how long it is fresh and how long it may be served stale."""
        if self.bypass:
            return []
        out = ["proxy_cache edge;"]
        if self.ttl is not None:
            out.append("proxy_cache_lock on;")  # one origin fetch per new object
            out.append(f"proxy_cache_valid 200 203 301 302 {self.ttl}s;")
            out.append(f"proxy_cache_valid 404 410 {min(self.ttl, 10)}s;")
        if not self.honour:
            out.append(OVERRIDE_IGNORE)
        elif hop:
            # stale only as each stored response allows (its stale-if-error and
            # stale-while-revalidate, the hop's account of the origin's and the rule's word)
            out.append("proxy_cache_background_update on;")
            out.append("proxy_cache_use_stale off;")
            return out
        stale = STALE_ON_ERROR if self.stale_if_error else ""
        if self.stale_while_revalidate:
            stale = f"{stale} updating".strip()
            out.append("proxy_cache_background_update on;")
        out.append(f"proxy_cache_use_stale {stale or 'off'};")
        return out


SEGMENT_MAPS = {
    "p1": r"""map $uri $seg1 {
    default "";
    ~^(?<rseg1>/[^/]+/) $rseg1;
}
""",
    "p2": r"""map $uri $seg2 {
    default "";
    ~^(?<rseg2>/[^/]+/[^/]+/) $rseg2;
}
""",
    "ext": r"""map $uri $ext {
    default "";
    ~\.(?<rext>[A-Za-z0-9]+)$ $rext;
}
""",
}
# kind -> (the map's key, its variable); in the order of the combination map's key
KINDS = {
    "exact": ('"$site_id:$uri"', "$r_exact"),
    "p2": ('"$site_id:$seg2"', "$r_p2"),
    "p1": ('"$site_id:$seg1"', "$r_p1"),
    "ext": ('"$site_id:$ext"', "$r_ext"),
}
CACHE_KEY_RULES = '"$site_id|$key_host|$uri|$key_query|$key_extra"'
CACHE_KEY_PLAIN = '"$site_id|$host|$uri|$args|"'  # the same key when no rule applies
CACHE_KEY_VARIABLE = "$edge_cache_key"  # per site: plain, or with the rules' parts

DEFAULT_PROFILE = CacheProfile()  # no rule matched: the origin's caching headers decide


def _arg(name: str) -> str:
    return "${arg_" + name + "}"


def key_query(spec: CacheKeySpec) -> str:
    """The query part of the cache key as an nginx value."""
    if spec.query == "all":
        return "$args"
    if spec.query == "none":
        return '""'
    return lit_value("&".join(f"{name}={_arg(name)}" for name in spec.query))


def key_extra(spec: CacheKeySpec) -> str:
    parts = [
        f"h:{h.lower()}=" + "${http_" + h.lower().replace("-", "_") + "}" for h in spec.headers
    ]
    parts += [f"c:{c}=" + "${cookie_" + c + "}" for c in spec.cookies]
    return lit_value("|".join(parts)) if parts else '""'


def lit_value(value: str) -> str:
    if '"' in value or "\\" in value or "\n" in value:
        raise ValueError(f"unsupported character in cache key part {value!r}")
    return f'"{value}"'


def rule_key(site_id: str, index: int) -> str:
    return f"{site_id}#{index}"


def location_name(cache: CacheProfile, proxy: ProxyProfile) -> str:
    return f"@{cache.name}__{proxy.name}"


@dataclass
class CompiledRules:
    """The maps of every site's rules, the named locations they use and the cache key."""

    maps: str
    locations: set[tuple[CacheProfile, ProxyProfile]] = field(default_factory=set)
    cache_key: str = CACHE_KEY_PLAIN
    rule_locations: dict[str, str] = field(default_factory=dict)  # rule key -> location name
    ruled: frozenset[str] = frozenset()  # the sites that have rules


@dataclass
class _SiteIndex:
    exact: dict[str, int] = field(default_factory=dict)
    p1: dict[str, int] = field(default_factory=dict)
    p2: dict[str, int] = field(default_factory=dict)
    ext: dict[str, int] = field(default_factory=dict)
    catch_all: int | None = None


def _index(rules: tuple[CacheRuleSpec, ...]) -> _SiteIndex:
    idx = _SiteIndex()
    for n, rule in enumerate(rules, start=1):
        p = rule.pattern
        if p == "/*":
            if idx.catch_all is None:
                idx.catch_all = n
        elif p.startswith("*."):
            idx.ext.setdefault(p[2:].lower(), n)
        elif p.endswith("/*"):
            prefix = p[:-1]
            depth = prefix.count("/") - 1
            if depth == 1:
                idx.p1.setdefault(prefix, n)
            elif depth == 2:
                idx.p2.setdefault(prefix, n)
            else:
                raise ValueError(f"cache rule {rule.id}: pattern {p!r} is deeper than two segments")
        elif p.startswith("/") and "*" not in p:
            idx.exact.setdefault(p, n)
        else:
            raise ValueError(f"cache rule {rule.id}: unsupported pattern {p!r}")
    if idx.catch_all is not None:  # rules after a catch-all can never match
        limit = idx.catch_all
        for table in (idx.exact, idx.p1, idx.p2, idx.ext):
            for key in [k for k, v in table.items() if v > limit]:
                del table[key]
    return idx


def compile_rules(
    sites: list[tuple[str, tuple[CacheRuleSpec, ...], ProxyProfile]],
) -> CompiledRules:
    """Compile ``[(site id, rules, proxy profile)]`` (sites with an origin pool) into maps.

    ``$rule_loc`` falls back to ``$site_default_loc`` (defined by the caller) when no rule
    matches.
    """
    tables: dict[str, list[tuple[str, str]]] = {kind: [] for kind in KINDS}
    combos: dict[tuple[str, ...], list[tuple[str, str]]] = {}  # kinds -> entries
    gate: list[tuple[str, str]] = []
    loc: list[tuple[str, str]] = []
    query: list[tuple[str, str]] = []
    host: list[tuple[str, str]] = []
    extra: list[tuple[str, str]] = []
    keyed: set[str] = set()  # the sites with a rule that changes the cache key
    locations: set[tuple[CacheProfile, ProxyProfile]] = set()
    indexed: list[tuple[str, tuple[CacheRuleSpec, ...], _SiteIndex]] = []
    for site_id, rules, proxy in sites:
        if not rules:
            continue
        idx = _index(rules)
        indexed.append((site_id, rules, idx))
        for n in _used(idx):
            locations.add((CacheProfile.of(rules[n - 1]), proxy))
    for site_id, rules, idx in indexed:
        # A site evaluates only the kinds of pattern it has: its combination map is the one of
        # the sites with the same kinds (at most 15 maps); with a catch-all alone, none.
        site_kinds = tuple(k for k in KINDS if _table(idx, k))
        if not site_kinds:
            assert idx.catch_all is not None
            gate.append((site_id, lit(rule_key(site_id, idx.catch_all))))
        else:
            gate.append((site_id, combo_variable(site_kinds)))
        for kind in site_kinds:
            tables[kind] += [(f"{site_id}:{k}", str(v)) for k, v in _table(idx, kind).items()]
        values = [sorted(set(_table(idx, kind).values())) for kind in site_kinds]
        for combination in itertools.product(*[[None, *v] for v in values]):
            present = [v for v in combination if v is not None]
            if idx.catch_all is not None:
                present.append(idx.catch_all)
            if not present or not site_kinds:
                continue
            key = "|".join([site_id, *("" if v is None else str(v) for v in combination)])
            combos.setdefault(site_kinds, []).append((key, lit(rule_key(site_id, min(present)))))
        proxy = next(p for s, _, p in sites if s == site_id)
        for n in _used(idx):
            rule = rules[n - 1]
            rk = rule_key(site_id, n)
            loc.append((rk, location_name(CacheProfile.of(rule), proxy)))
            if not rule.bypass:
                if rule.cache_key.query != "all":
                    query.append((rk, key_query(rule.cache_key)))
                    keyed.add(site_id)
                if not rule.cache_key.host:
                    host.append((rk, '""'))
                    keyed.add(site_id)
                if rule.cache_key.headers or rule.cache_key.cookies:
                    extra.append((rk, key_extra(rule.cache_key)))
                    keyed.add(site_id)
    if not indexed:
        text = "# cache rules: none (no rule maps; the cache key is plain)\n"
        text += map_block("$site_id", "$rule_loc", [], default="$site_default_loc")
        return CompiledRules(text, locations, CACHE_KEY_PLAIN)
    used_kinds = [k for k in KINDS if tables[k]]
    text = "# cache rules: first match wins (hash maps + a combination map per set of kinds)\n"
    text += "".join(SEGMENT_MAPS[k] for k in used_kinds if k in SEGMENT_MAPS)
    for kind in used_kinds:
        source, variable = KINDS[kind]
        text += map_block(source, variable, tables[kind])
    for site_kinds, entries in sorted(combos.items()):
        combo_key = "|".join(["$site_id", *(KINDS[k][1] for k in site_kinds)])
        text += map_block(f'"{combo_key}"', combo_variable(site_kinds), entries)
    text += map_block("$site_id", "$rule", gate)  # a site without rules: "" at once
    text += map_block("$rule", "$rule_loc", loc, default="$site_default_loc")
    ruled = frozenset(site_id for site_id, _, _ in indexed)
    if not keyed:  # no rule changes a key: every site's key is the plain one
        return CompiledRules(text, locations, CACHE_KEY_PLAIN, dict(loc), ruled)
    # Only the sites whose rules change the key build it from the rules' parts (three more
    # lookups); every other site's key is the plain one, chosen by one lookup on $site_id.
    text += map_block("$rule", "$key_query", query, default="$args")
    text += map_block("$rule", "$key_host", host, default="$host")
    text += map_block("$rule", "$key_extra", extra)
    per_site = [(site_id, CACHE_KEY_RULES) for site_id in sorted(keyed)]
    text += map_block("$site_id", CACHE_KEY_VARIABLE, per_site, default=CACHE_KEY_PLAIN)
    return CompiledRules(text, locations, CACHE_KEY_VARIABLE, dict(loc), ruled)


def combo_variable(kinds: tuple[str, ...]) -> str:
    return "$rule_" + "_".join(kinds)


def _table(idx: _SiteIndex, kind: str) -> dict[str, int]:
    return {"exact": idx.exact, "p2": idx.p2, "p1": idx.p1, "ext": idx.ext}[kind]


def _used(idx: _SiteIndex) -> list[int]:
    """The rules that can be the first match of some request (in the site's order)."""
    values = {v for kind in KINDS for v in _table(idx, kind).values()}
    if idx.catch_all is not None:
        values.add(idx.catch_all)
    return sorted(values)
