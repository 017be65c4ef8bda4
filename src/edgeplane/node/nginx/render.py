"""Render an ``EdgeConfig`` into a complete nginx release directory (pure and deterministic).

One shared ``server`` per listening port; everything that varies per site goes through maps keyed
by ``$host`` (``$site_id``) or ``$ssl_server_name`` (``$cert_name``); one ``upstream`` per pool;
cache rules compiled into hash maps (``render_cache``); one named location per (cache profile,
proxy profile) pair actually used. The release holds a marker (a hash of every other file) that
the internal status listener serves, so the engine can tell when the new release answers.

Maps of many keys (a host's site, its redirect, an SNI name's certificate link, at 10,000
domains) are written as shard files named by their content (``render_shards``): the release
names them, and a change of one key changes one shard per map. An engine passes the memo of its
last render (``RenderMemo``), from which only what changed is computed again; the release is
the same as a render from nothing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from edgeplane.node.nginx.cert_index import CertIndex
from edgeplane.node.nginx.hop_script import SCRIPT as HOP_SCRIPT
from edgeplane.node.nginx.local import LocalHealth, NodeLocal
from edgeplane.node.nginx.render_access import render_acl, render_rate_limits
from edgeplane.node.nginx.render_bots import LOG_FIELD, ROUTE_LINE, render_bots
from edgeplane.node.nginx.render_bundles import bundle_locations, bundle_maps, mime_types
from edgeplane.node.nginx.render_cache import (
    DEFAULT_PROFILE,
    CacheProfile,
    compile_rules,
    location_name,
)
from edgeplane.node.nginx.render_functions import (
    LOG_FIELDS as FUNCTION_LOG_FIELDS,
)
from edgeplane.node.nginx.render_functions import (
    STATIC_LOC,
    fetch_server,
    function_locations,
    function_maps,
    scheme_map,
    served_functions,
    waf_profiles,
    with_request_ids,
)
from edgeplane.node.nginx.render_functions import upstream as function_upstream
from edgeplane.node.nginx.render_headers import render_headers
from edgeplane.node.nginx.render_hop import (
    FORWARDED,
    SCRIPT_FILE,
    Hop,
    hop_http_lines,
    hop_servers,
    hop_upstreams,
)
from edgeplane.node.nginx.render_jump import Inline, dominant_location, jump_maps
from edgeplane.node.nginx.render_limits import render_client_limits
from edgeplane.node.nginx.render_origin_tls import ca_files
from edgeplane.node.nginx.render_shards import ShardMemo, Shards
from edgeplane.node.nginx.render_sni import (
    MISDIRECTED,
    NAMES_FILE,
    mismatch_maps,
    names_file,
    reject_server,
    served_with_cert,
)
from edgeplane.node.nginx.render_stapling import server_head, stapled_names
from edgeplane.node.nginx.render_tls import (
    DEFAULT_CERT,
    SniLinks,
    cert_map,
    served_name,
    ssl_session_lines,
)
from edgeplane.node.nginx.render_upstreams import (
    ProxyProfile,
    pool_scheme,
    render_upstream,
    upstream_name,
)
from edgeplane.node.nginx.render_waf import (
    blocked_locations,
    http_lines,
    load_modules,
    site_proxy,
    status_location,
)
from edgeplane.node.nginx.syntax import block, lit, map_block
from edgeplane.protocol.config import EdgeConfig, PoolSpec, SiteSpec

STATUS_FILE = "status.conf"
FORWARDED_PROTO = "proxy_set_header X-Forwarded-Proto $scheme;"
FORWARDED_PROTO_FN = "proxy_set_header X-Forwarded-Proto $edge_scheme;"
# Relative to the release directory (nginx's conf prefix, ``prefix/releases/<marker>/``), so the
# same on every node: for certificates loaded per handshake, nginx derives the TLS session id
# context from these names, and a session (a ticket) resumes only where it is the same.
CERT_PATH = "../../certs/names/$cert_name.pem"  # a link to the name's certificate
UNKNOWN_HOST = "@unknown"
NO_ORIGIN = "@noorigin"
VERIFY_PATH = "/.well-known/edgeplane-verification/"

# Exactly the fields the agent's analytics (node/agent/analytics.py) and access log samples
# (node/agent/access_samples.py: method, uri, user agent) read, written through a 64 KiB buffer
# flushed every second: a few hundred bytes of formatting per request, a write(2) per ~250
# requests. The time is to the second (analytics count per minute), so that the lines of a
# second's similar requests are equal and the agent parses each distinct line once.
LOG_FORMAT = (
    'log_format edge_json escape=json \'{"time":"$time_iso8601","host":"$host","site":"$site_id",'
    '"status":$status,"bytes_sent":$bytes_sent,"request_time":$request_time,'
    '"upstream_response_time":"$upstream_response_time","upstream":"$upstream_addr",'
    '"cache":"$x_cache","source":"$edge_source","remote_addr":"$remote_addr",'
    '"method":"$request_method","uri":"$request_uri","ua":"$http_user_agent"}\';\n'
)
LOG_BUFFER = "buffer=64k flush=1s"

X_CACHE_MAP = """map "$upstream_cache_status|$edge_source" $x_cache {
    default $upstream_cache_status;
    "|" BYPASS;
    "|bundle" STATIC;
    "UPDATING|" STALE;
    "REVALIDATED|" HIT;
}
"""

CIPHERS = ":".join(
    [
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
    ]
)

SSL_SETTINGS = f"""ssl_protocols TLSv1.2 TLSv1.3;
ssl_ciphers {CIPHERS};
ssl_ecdh_curve X25519:prime256v1:secp384r1;
ssl_prefer_server_ciphers off;
"""

PROXY_SETTINGS = "proxy_http_version 1.1;\n"
PROXY_SETTINGS += "".join(f"proxy_set_header {name} {value};\n" for name, value in FORWARDED)
PROXY_SETTINGS += """proxy_next_upstream error timeout http_502 http_503 http_504;
proxy_ssl_server_name on;
proxy_ssl_name $host;
proxy_cache_lock_timeout 5s;
proxy_cache_revalidate on;
proxy_pass_header Date;
"""


@dataclass(frozen=True)
class Release:
    files: dict[str, bytes]  # relative path -> content, including the status file
    marker: str
    # the shard files of the big maps (``render_shards``), named by their content: written
    # under ``prefix/maps/``, shared by the releases that name them
    shards: dict[str, bytes] = field(default_factory=dict)
    # with an HTTPS port: the SNI names' certificates (what they were computed from aside)
    sni: SniLinks | None = field(default=None, compare=False)


@dataclass
class RenderMemo:
    """What an engine's last render computed, for its next to start from (a render is the
    same with or without it; with it, a change of one domain among 10,000 costs about what
    that domain's share of the maps costs): the big maps' shards, the SNI links and the
    certificate index under them."""

    shards: ShardMemo = field(default_factory=dict)
    sni: SniLinks | None = None


def _paths(local: NodeLocal) -> dict[str, str]:
    p = str(local.prefix)
    return {
        "pid": f"{p}/nginx.pid",
        "error_log": f"{p}/logs/error.log",
        "access_log": f"{p}/logs/access.json",
        "tmp": f"{p}/tmp",
        "cache": f"{p}/cache",
        "certs": f"{p}/certs",
        "tickets": f"{p}/tickets",
        "acme": f"{p}/acme-challenge",
        "status": f"{p}/status.sock",
    }


def _main_conf(local: NodeLocal, modules: tuple[str, ...] = ()) -> str:
    paths = _paths(local)
    user = local.worker_user
    head = f"load_module {local.brotli_module};\n" if local.brotli_module else ""
    loaded = [local.js_module] if local.js_module else []
    loaded += [m for m in modules if m not in loaded]  # njs: once for the hop and bots
    head += "".join(f"load_module {m};\n" for m in loaded)
    head += f"user {user};\n" if user else ""
    return (
        f"# nginx of edge node {local.node_name} (rendered by Edgeplane; do not edit)\n"
        f"{head}worker_processes {local.workers};\n"
        "pcre_jit on;\n"  # the regex maps of cache rules and bundles, compiled to machine code
        "worker_shutdown_timeout 60s;\n"  # old workers of a reload end within a minute
        f"pid {paths['pid']};\n"
        f"error_log {paths['error_log']} warn;\n"
        "daemon off;\n"
        "events {\n    worker_connections 4096;\n}\n"
        "http {\n"
        "    include base.conf;\n"
        "    include sites.map;\n"
        "    include cache-rules.map;\n"
        "    include access.conf;\n"
        "    include upstreams.conf;\n"
        "    include servers.conf;\n"
        f"    include {STATUS_FILE};\n"
        "}\n"
    )


def map_hash_size(names: int) -> int:
    """``map_hash_max_size`` for maps of up to ``names`` keys: a power of two at least twice
    the keys. nginx starts its search for a table size at ``max_size - 1000`` when the keys
    are more than a hundredth of it, so a fixed 262,144 gave every big map a 262,144-bucket
    table (about 4 MiB more per nginx process at 10,000 domains and a slower ``nginx -t``)."""
    size = 2048
    while size < 2 * names:
        size *= 2
    return size


def _base_conf(
    local: NodeLocal,
    cache_key: str,
    config: EdgeConfig,
    map_size: int,
    log_extra: str = "",
    waf: str = "",
) -> str:
    paths = _paths(local)
    tmp = paths["tmp"]
    log_format = LOG_FORMAT.replace('"ua":', log_extra + '"ua":') if log_extra else LOG_FORMAT
    if local.js_module:  # misses reach the origin through the hop, which names the backend
        log_format = log_format.replace('"$upstream_addr"', '"$edge_upstream"')
    return (
        "default_type application/octet-stream;\n"
        "server_tokens off;\n"
        # sendfile off: a small cached object goes out with its header in one writev (one
        # packet); with sendfile, header and body are two sends. Bundles turn it on.
        "sendfile off;\n"
        "tcp_nodelay on;\n"
        "keepalive_timeout 65s;\n"
        "keepalive_requests 10000;\n"
        "client_max_body_size 100m;\n"
        f"map_hash_max_size {map_size};\n"
        f"server_names_hash_max_size {map_size};\n"
        "server_names_hash_bucket_size 128;\n"
        "map_hash_bucket_size 128;\n"
        "variables_hash_max_size 4096;\n"
        "variables_hash_bucket_size 128;\n"
        f"client_body_temp_path {tmp}/body;\n"
        f"proxy_temp_path {tmp}/proxy;\n"
        f"fastcgi_temp_path {tmp}/fastcgi;\n"
        f"uwsgi_temp_path {tmp}/uwsgi;\n"
        f"scgi_temp_path {tmp}/scgi;\n"
        + log_format
        + f"access_log {paths['access_log']} edge_json {LOG_BUFFER};\n"
        f"proxy_cache_path {paths['cache']} levels=1:2 keys_zone=edge:50m max_size=10g "
        "inactive=1d use_temp_path=off;\n"
        + PROXY_SETTINGS
        + f"proxy_cache_key {cache_key};\n"
        + SSL_SETTINGS
        + ssl_session_lines(config, paths["tickets"])
        + X_CACHE_MAP
        + waf
        + (hop_http_lines() if local.js_module else "")
    )


def _headers_conf(local: NodeLocal, hsts: bool, policy: str) -> str:
    """The headers of every response (each block that has its own ``add_header`` includes
    them, since nginx inherits ``add_header`` only into blocks without one); ``policy``: the
    security headers' lines (``render_headers``)."""
    text = (
        f"add_header X-Served-By {lit(local.node_name)} always;\n"
        "add_header X-Cache-Status $x_cache always;\n"
        # RFC 9213's targeted field is for this edge alone
        "proxy_hide_header Surrogate-Control;\n" + policy
    )
    if hsts:  # only when a site asks for it: a map lookup per response otherwise
        text += "add_header Strict-Transport-Security $hsts always;\n"
    return text


def _hsts(site: SiteSpec) -> str:
    value = f"max-age={site.hsts_max_age}"
    if site.hsts_include_subdomains:
        value += "; includeSubDomains"
    return lit(value)


def _hosts(
    local: NodeLocal, sites: list[SiteSpec], index: CertIndex
) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """(host -> site id, the hosts redirected to HTTPS)."""
    host_site: dict[str, str] = {}
    redirect: list[tuple[str, str]] = []
    exact = index.exact
    for site in sites:
        https = site.force_https and local.https_port
        for domain in site.domains:
            name = served_name(domain)
            if name in host_site:
                continue  # a name served by two sites: the first (by id) keeps it
            host_site[name] = site.id
            if https:
                bare = name.lstrip("*.")
                if bare in exact or index.covers(bare):
                    redirect.append((name, "1"))
    return host_site, redirect


def _sites_map(
    config: EdgeConfig,
    local: NodeLocal,
    sites: list[SiteSpec],
    pools: dict[str, PoolSpec],
    hosts: tuple[dict[str, str], list[tuple[str, str]]],
    links: dict[str, str] | None,
    shards: Shards,
    index: CertIndex,
) -> str:
    host_site, redirect = hosts
    target: list[tuple[str, str]] = []
    default_loc: list[tuple[str, str]] = []
    hsts: list[tuple[str, str]] = []
    for site in sites:
        pool = pools.get(site.pool) if site.pool else None
        if pool is None:
            default_loc.append((site.id, NO_ORIGIN))
        else:
            target.append((site.id, lit(f"{pool_scheme(pool)}://{upstream_name(pool.id)}")))
            proxy = site_proxy(site, pool, local)
            default_loc.append((site.id, location_name(DEFAULT_PROFILE, proxy)))
        if site.hsts_max_age > 0:
            hsts.append((site.id, _hsts(site)))
    big = shards.sharded_map
    text = "# host -> site (project id)\n"
    text += big("$host", "$site_id", list(host_site.items()), hostnames=True, quote=True)
    text += big("$host", "$redirect_https", redirect, default="0", hostnames=True)
    # the proxy_pass of a location serving several pools: one lookup, no URL to assemble
    text += big("$site_id", "$site_pass", target, default=lit("http://no_origin"))
    text += big("$site_id", "$site_default_loc", default_loc, default=UNKNOWN_HOST)
    if hsts:
        # over HTTPS only (RFC 6797 7.2); a plain request looks up "" and stops there
        text += map_block("$https", "$hsts", [("on", "$hsts_site")])
        text += big("$site_id", "$hsts_site", hsts)
    if config.verifications:
        text += big(
            '"$host|$uri"',
            "$ownership_token",
            [(f"{v.domain}|{VERIFY_PATH}{v.token}", v.token) for v in config.verifications],
            quote=True,
        )
    if links is not None:
        text += cert_map(links, shards)
        text += mismatch_maps(links, host_site, index, shards)
    return text


def _proxied_lines(
    cache: CacheProfile, proxy: ProxyProfile, pool: PoolSpec | None = None, hop: Hop | None = None
) -> list[str]:
    """A proxied location's lines; with ``pool``, ``proxy_pass`` names it (no variable to
    evaluate and no URL to parse per request); with ``hop``, a caching location's misses go
    through the origin hop (``render_hop``)."""
    if hop is not None and not cache.bypass:
        return [*hop.lines(cache, proxy), *cache.lines(hop=True)]
    target = "$site_pass"
    if pool is not None:
        target = f"{pool_scheme(pool)}://{upstream_name(pool.id)}"
    return [f"proxy_pass {target};", *proxy.lines(), *cache.lines()]


def _named_locations(
    locations: set[tuple[CacheProfile, ProxyProfile]], hop: Hop | None = None
) -> str:
    text = block(
        f"location {UNKNOWN_HOST}",
        ["include headers.conf;", "default_type text/plain;", 'return 404 "unknown host\\n";'],
    ) + block(
        f"location {NO_ORIGIN}",
        [
            "include headers.conf;",
            'set $edge_source "";',
            "default_type text/plain;",
            'return 502 "no origin is configured for this site\\n";',
        ],
    )
    for cache, proxy in sorted(locations, key=lambda cp: location_name(*cp)):
        # after a bundle's try_files fell back here, the response is the origin's again
        proxied = _proxied_lines(cache, proxy, hop=hop)
        lines = ["include headers.conf;", 'set $edge_source "";', *proxied]
        text += block(f"location {location_name(cache, proxy)}", lines)
    return text


@dataclass(frozen=True)
class Routing:
    """What ``location /`` needs to check before it serves or jumps (only what some site uses)."""

    acl: bool = False
    redirect: bool = False
    bots: bool = False
    sni: bool = False  # HTTPS: answer 421 when the Host is not the connection's (render_sni)
    inline: Inline | None = None
    hop: Hop | None = None
    checks: tuple[str, ...] = ()  # refusals before routing (render_limits: 431, 413)
    waf: bool = False  # a site has the WAF on (render_waf.route_lines)


def _route(local: NodeLocal, routing: Routing, *, tls: bool) -> list[str]:
    route = ["include headers.conf;"]
    if routing.waf:
        route.append("recursive_error_pages on;")
    if tls and routing.sni:
        route.append(MISDIRECTED)
    if routing.acl:
        route.append("if ($acl_blocked) { return 403; }")
    route.extend(routing.checks)
    if not tls and local.https_port and routing.redirect:
        port = "" if local.https_port == 443 else f":{local.https_port}"
        route.append(f"if ($redirect_https) {{ return 308 https://$host{port}$request_uri; }}")
    if routing.bots:
        route.append(ROUTE_LINE)
    if routing.inline is None:
        return [*route, "error_page 418 = $edge_loc;", "return 418;"]
    # The most common location (and pool) is served here; every other one is a named location,
    # reached by an internal redirect (error_page), which a request served here never pays.
    jump = "if ($edge_jump) { error_page 418 = $edge_loc; return 418; }"
    inline = routing.inline
    return [*route, jump, *_proxied_lines(inline.cache, inline.proxy, inline.pool, routing.hop)]


def _server(
    local: NodeLocal,
    *,
    tls: bool,
    limits: list[str],
    routing: Routing,
    verifications: bool = False,
    head: list[str] | None = None,
) -> str:
    """A ``server`` (``head``: the listen, names and certificate lines of a stapling one)."""
    paths = _paths(local)
    if head is not None:
        listen = head
    elif tls:
        listen = [
            f"listen {local.bind}:{local.https_port} ssl http2;",
            f"include {NAMES_FILE};",
            f"ssl_certificate {CERT_PATH};",
            f"ssl_certificate_key {CERT_PATH};",
        ]
    else:
        listen = [f"listen {local.bind}:{local.http_port} default_server;"]
    route = _route(local, routing, tls=tls)
    names = [] if head is not None or tls else ["server_name _;"]
    lines = [*listen, *names, 'set $edge_source "";', "include headers.conf;", *limits]
    body = "".join(f"    {line}\n" for line in lines)
    if not tls:
        body += block(
            "location /.well-known/acme-challenge/",
            ["include headers.conf;", "default_type text/plain;", f"alias {paths['acme']}/;"],
            indent="    ",
        )
    if not tls and verifications:
        body += block(
            f"location ^~ {VERIFY_PATH}",
            [
                "include headers.conf;",
                "default_type text/plain;",
                'if ($ownership_token) { return 200 "$ownership_token\n"; }',
                'return 404 "no such verification token\n";',
            ],
            indent="    ",
        )
    body += block("location /", route, indent="    ")
    body += "    include locations.conf;\n"
    return f"server {{\n{body}}}\n"


def render_release(
    config: EdgeConfig, local: NodeLocal, health: LocalHealth, memo: RenderMemo | None = None
) -> Release:
    """The release of ``config``, from ``memo`` (the engine's last render) when given; the
    memo is left holding this render's."""
    sites = sorted(config.sites, key=lambda s: s.id)
    pools = {p.id: p for p in config.pools}
    served_pools = sorted({s.pool for s in sites if s.pool in pools})
    upstreams = "".join(render_upstream(pools[p], health) for p in served_pools)
    with_pool = [
        (s.id, s.cache_rules, site_proxy(s, pools[s.pool], local))
        for s in sites
        if s.pool is not None and s.pool in pools
    ]
    compiled = compile_rules(with_pool)
    locations = set(compiled.locations)
    locations |= {(DEFAULT_PROFILE, proxy) for _, _, proxy in with_pool}
    rate_http, rate_server = render_rate_limits(sites)
    client = render_client_limits(sites)
    rate_server += client.server
    bots = render_bots(sites, local.prefix)
    if bots is not None:
        rate_server = [*rate_server, *bots.server]
    waf_sites = [s for s in sites if s.waf is not None]
    last = memo.sni if memo is not None else None
    index = CertIndex()  # the certificates: only with an HTTPS port
    if local.https_port:
        index = last.index.updated(config.certs) if last else CertIndex.of(config.certs)
    hosts = _hosts(local, sites, index)
    sni = SniLinks.of(last, index, hosts[0]) if local.https_port else None
    links = sni.links if sni is not None else None
    if memo is not None and sni is not None:
        memo.sni = sni
    shards = Shards(memo=memo.shards if memo is not None else None)
    sites_map = _sites_map(config, local, sites, pools, hosts, links, shards, index)
    names = max(len(hosts[0]), len(links or ()), len(config.verifications))
    inline = dominant_location(sites, pools)
    hop = Hop(compiled.cache_key) if local.js_module else None
    hopped = (
        []
        if hop is None
        else sorted(
            {proxy for cache, proxy in locations if not cache.bypass},
            key=lambda p: (p.connect_ms, p.read_ms, p.tries, p.tls, p.name),  # WAF ones: by name
        )
    )
    routing = Routing(
        acl=any(s.ip_allow or s.ip_deny for s in sites),
        redirect=bool(hosts[1]),
        inline=inline,
        checks=tuple(client.checks),
        bots=bots is not None,
        waf=bool(waf_sites),
        hop=hop,
        sni=bool(links),
    )
    functions = served_functions(config, sites)
    fn_wafs = waf_profiles(functions, sites, local) if functions else {}
    if inline is not None:
        # a site with a bundle or functions always jumps (to $edge_loc)
        bundled = {b.site for b in config.bundles} | {f.site for f in functions}
        sites_map += jump_maps(inline, sites, pools, compiled, bundled, shards)
    servers = _server(
        local,
        tls=False,
        limits=rate_server,
        routing=routing,
        verifications=bool(config.verifications),
    )
    names_conf = ""
    if local.https_port:
        assert links is not None
        servers += reject_server(local.bind, local.https_port)
        servers += _server(local, tls=True, limits=rate_server, routing=routing)
        stapling = stapled_names(config, links, local.max_stapled)
        for cert, stapled in stapling:
            head = server_head(local.bind, local.https_port, cert, stapled)
            servers += _server(local, tls=True, limits=rate_server, routing=routing, head=head)
        in_blocks = {name for _, names in stapling for name in names}
        names_conf = names_file(served_with_cert(links, in_blocks))
    servers += hop_servers(local, hopped, compiled.cache_key, _paths(local)["status"])
    if functions:
        servers += fetch_server(local)
    log_extra = LOG_FIELD if bots else ""
    if functions:
        log_extra += FUNCTION_LOG_FIELDS
    policy, policy_maps = render_headers(sites)
    files: dict[str, str] = {
        "nginx.conf": _main_conf(
            local, (*load_modules(local, waf_sites), *((bots.module,) if bots else ()))
        ),
        "base.conf": _base_conf(
            local,
            compiled.cache_key,
            config,
            map_hash_size(names),
            log_extra,
            http_lines(local, waf_sites),
        ),
        "headers.conf": _headers_conf(local, any(s.hsts_max_age > 0 for s in sites), policy),
        "sites.map": sites_map
        + policy_maps
        + bundle_maps(
            config,
            local.bundle_root,
            sites,
            {s.id for s in sites if s.pool in pools},
            STATIC_LOC if functions else "$edge_loc",
        )
        + (function_maps(functions, fn_wafs) + scheme_map(local) if functions else ""),
        "cache-rules.map": compiled.maps,
        "access.conf": render_acl(sites) + rate_http + client.http + (bots.http if bots else ""),
        "upstreams.conf": (upstreams or "# no pools\n")
        + hop_upstreams(local, hopped)
        + (function_upstream(local) if functions else ""),
        "locations.conf": _named_locations(locations, hop)
        + bundle_locations(config, brotli=bool(local.brotli_module))
        + (bots.location if bots else "")
        + (function_locations(fn_wafs) if functions else "")
        + blocked_locations(  # where the WAF inspects in place (hops have their own)
            [
                *(proxy for cache, proxy in locations if hop is None or cache.bypass),
                *fn_wafs.values(),  # @fn of WAF sites
            ],
            _paths(local)["status"],
        ),
        "mime.types": mime_types(),
        "servers.conf": servers,
        **(bots.files if bots else {}),
        **ca_files(pools[p] for p in served_pools),  # private origins' trusted CAs, if any
    }
    if functions:
        # toward origins, the scheme of the function's request on the fetch socket
        # and the request id of the function's request (render_functions.scheme_map)
        for name in ("base.conf", "servers.conf", "locations.conf"):
            text = files[name].replace(FORWARDED_PROTO, FORWARDED_PROTO_FN)
            files[name] = with_request_ids(text)
    if local.https_port:
        files[NAMES_FILE] = names_conf
    if hop is not None:
        files[SCRIPT_FILE] = HOP_SCRIPT
    encoded = {name: text.encode() for name, text in sorted(files.items())}
    digest = hashlib.sha256()
    for name, content in encoded.items():
        digest.update(name.encode() + b"\0" + content + b"\0")
    marker = digest.hexdigest()[:16]
    encoded[STATUS_FILE] = (
        "# internal status listener: the engine's probe (not reachable from the network)\n"
        + block(
            "server",
            [
                f"listen unix:{_paths(local)['status']};",
                "access_log off;",
                f"location / {{ default_type text/plain; return 200 {lit(marker)}; }}",
                *status_location([*(proxy for _, proxy in locations), *fn_wafs.values()]),
            ],
        )
    ).encode()
    return Release(dict(sorted(encoded.items())), marker, dict(sorted(shards.files.items())), sni)


def render(config: EdgeConfig, local: NodeLocal, health: LocalHealth) -> dict[str, bytes]:
    """Relative path inside a release directory -> file content."""
    return render_release(config, local, health).files


__all__ = ["DEFAULT_CERT", "Release", "RenderMemo", "render", "render_release"]
