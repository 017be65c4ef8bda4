"""The snapshot of one edge node: a pure, deterministic function of the desired state.

``load_state`` (``edgeplane.snapshot.load``) reads what the edge needs in a few bulk queries into
a ``DesiredState``; ``snapshot(state, node, revision)`` turns it into the node's ``EdgeConfig``:

- a **site** per project with at least one active domain (site id = project id, domains
  sorted);
- its **pool**: the CDN config's origins (the first load balancer origin ->
  ``lb.<project>.<lb id>``; else the URL origins -> ``origin.<project>``, round robin with their
  weights and backup flags, passive checks only), or with no CDN config the project's only load
  balancer; else none (the site answers 502). A pool with no usable backend is no pool. A load
  balancer's backends in the data centers of a DR config follow the config's state (which side
  serves: ``edgeplane.snapshot.dr``);
- its **cache rules** and **security** from the CDN config; without one: no rules, HTTPS forced
  when every domain of the site has a certificate, no HSTS. HTTPS is never forced for a site
  with a domain that has no certificate (the redirect would lead nowhere);
- the **certificates** of its domains (the newest valid one each, chosen by ``load_state``),
  and the project's client certificate when its pool presents one to the origins
  (``edgeplane.certificates.origin_client``; no SNI names, never served);
- the **bundles** of edge deployments, per node: a node serves a project's rolling-out version
  when it is the canary (``canary``) or in its regions (``rolling``), else the project's
  ``active`` version when in its regions, else none (the site goes to its origin);
- the **zones** of every domain, verified or not (``edgeplane.snapshot.zones``): a domain's zone
  holds its verification TXT, so delegating the domain to the edge nodes is one way to prove
  ownership; the HTTP edge serves verified (``active``) domains only.

Everything is sorted, so equal states give equal snapshots and equal content hashes.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal
from urllib.parse import urlsplit

from edgeplane.model.cdn import CacheRule, EdgeSecurity, Origin
from edgeplane.model.client_limits import ClientLimits, effective, effective_rate
from edgeplane.model.headers_policy import HEADERS, HeadersPolicy
from edgeplane.model.origin_tls import OriginTls
from edgeplane.protocol.config import (
    AcmeHttpSpec,
    BackendSpec,
    BundleSpec,
    CacheKeySpec,
    CacheRuleSpec,
    CertSpec,
    ClientLimitsSpec,
    EdgeConfig,
    GeoDnsSpec,
    HealthCheckSpec,
    NodeSpec,
    PoolSpec,
    RateLimitSpec,
    SiteSpec,
    TicketKeySpec,
    VerificationSpec,
    ZoneSpec,
)
from edgeplane.protocol.headers import HeaderRuleSpec, HeadersSpec
from edgeplane.protocol.origin_tls import OriginTlsSpec
from edgeplane.snapshot.bots import bot_spec
from edgeplane.snapshot.dr import Placement, apply_effect, pool_effects
from edgeplane.snapshot.functions import FunctionState, node_functions
from edgeplane.snapshot.waf import waf_spec
from edgeplane.snapshot.zones import DnsState, build_geo, build_zones

DEFAULT_OPTIONS = {"connect_timeout_s": 2.0, "read_timeout_s": 30.0, "retries": 1}
_HOSTPORT = re.compile(r"^(?P<host>\[[0-9a-fA-F:.]+\]|[^\s:/\[\]]+):(?P<port>\d{1,5})$")
_ALGORITHMS = ("round_robin", "least_conn", "ip_hash", "weighted", "dynamic")


@dataclass(frozen=True)
class BackendState:
    """A backend as stored: ``address`` is a server id, ``host:port`` or an http(s) URL."""

    address: str
    port: int | None = None
    weight: int = 1
    backup: bool = False
    state: str = "active"
    wait_for_check: bool = False  # out of rotation on a node until a check passed there


@dataclass(frozen=True)
class LoadBalancerState:
    project: str
    id: str
    algorithm: str
    backends: tuple[BackendState, ...]
    health_check: Mapping[str, Any] | None = None
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CDNState:
    origins: tuple[Origin, ...] = ()
    cache_rules: tuple[CacheRule, ...] = ()
    security: EdgeSecurity = field(default_factory=EdgeSecurity)
    bot_key: str = field(default="", repr=False)  # with bot protection (snapshot.bots)


@dataclass(frozen=True)
class CertState:
    """A domain's newest valid certificate, its key decrypted."""

    cert_pem: str
    key_pem: str
    names: tuple[str, ...]
    not_after: str  # ISO 8601
    id: str  # sha256 of cert_pem
    ocsp_staple: str | None = None  # base64 DER OCSP response (certificates.stapling)
    ocsp_stamp: str | None = None  # its thisUpdate: which response the cache holds


@dataclass(frozen=True)
class DeploymentState:
    """A live version of a project's edge deployment (``canary``, ``rolling`` or ``active``)."""

    project: str
    id: str
    version: int
    bundle: str
    size: int
    regions: tuple[str, ...]
    status: str
    canary_node: str | None = None
    spa: bool = False
    origin_paths: tuple[str, ...] = ()
    check_path: str | None = None


@dataclass(frozen=True)
class DesiredState:
    """What the edge serves, as read from the database (see ``edgeplane.snapshot.load``)."""

    domains: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # project -> active
    cdn: Mapping[str, CDNState] = field(default_factory=dict)  # project -> its CDN config
    load_balancers: Mapping[tuple[str, str], LoadBalancerState] = field(default_factory=dict)
    # (project, server id) -> the server's address (None: it has none)
    servers: Mapping[tuple[str, str], str | None] = field(default_factory=dict)
    certs: Mapping[str, CertState] = field(default_factory=dict)  # domain -> certificate
    dns: DnsState = field(default_factory=DnsState)  # the hosted zones and the edge nodes
    acme_http: tuple[tuple[str, str], ...] = ()  # (token, key authorization) of open orders
    deployments: tuple[DeploymentState, ...] = ()
    # the live versions of edge functions (``snapshot.functions.load_functions``)
    functions: tuple[FunctionState, ...] = ()
    ticket_keys: tuple[TicketKeySpec, ...] = ()  # TLS session ticket keys (snapshot.tickets)
    # the DR configs, their states and where their projects' servers are (snapshot.dr)
    placement: Placement = field(default_factory=Placement)
    # project -> the client certificate its pools present to origins (names empty)
    client_certs: Mapping[str, CertState] = field(default_factory=dict)


# Backends -----------------------------------------------------------------------------------


def _split_hostport(text: str) -> tuple[str, int | None]:
    m = _HOSTPORT.match(text)
    if m:
        return m.group("host"), int(m.group("port"))
    return text, None


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def resolve_backend(state: DesiredState, project: str, backend: BackendState) -> BackendSpec | None:
    """The backend's scheme, host and port; None when a server id names no addressable server.

    ``host`` keeps IPv6 literals in brackets, so ``f"{host}:{port}"`` is an address.
    """
    address = backend.address.strip()
    scheme: Literal["http", "https"] = "http"
    key = address
    if address.startswith(("http://", "https://")):
        parts = urlsplit(address)
        scheme = "https" if parts.scheme == "https" else "http"
        host = _bracket(parts.hostname or "")
        port = parts.port or backend.port or (443 if scheme == "https" else 80)
    else:
        host_part, port_part = _split_hostport(address)
        if port_part is not None:
            host, port = host_part, port_part
        else:
            if (project, address) not in state.servers:
                return None
            server_address = state.servers[(project, address)]
            if not server_address:
                return None
            s_host, s_port = _split_hostport(server_address.strip())
            host = _bracket(s_host)
            port = backend.port or s_port or 80
            if backend.port:
                key = f"{address}:{backend.port}"
    if not host:
        return None
    state_value: Literal["active", "draining", "disabled"] = (
        "draining"
        if backend.state == "draining"
        else "disabled"
        if backend.state == "disabled"
        else "active"
    )
    return BackendSpec(
        key=key,
        scheme=scheme,
        host=host,
        port=int(port),
        weight=max(1, min(1000, int(backend.weight))),
        backup=bool(backend.backup),
        state=state_value,
        wait_for_check=bool(backend.wait_for_check),
    )


def _health_check(raw: Mapping[str, Any] | None) -> HealthCheckSpec | None:
    if raw is None:
        return None
    known = HealthCheckSpec.model_fields
    return HealthCheckSpec(**{k: v for k, v in raw.items() if k in known})


def dr_backends(state: DesiredState, lb: LoadBalancerState) -> tuple[BackendState, ...]:
    """``lb``'s backends as its project's DR configs have them served (``snapshot.dr``)."""
    if not state.placement.rules.get(lb.project):
        return lb.backends
    effects = pool_effects(state.placement, lb.project, [b.address for b in lb.backends])
    out = []
    for b, (effect, _) in zip(lb.backends, effects, strict=True):
        backup, admin = apply_effect(effect, b.backup, b.state)
        changed = (backup, admin) != (b.backup, b.state)
        out.append(dataclasses.replace(b, backup=backup, state=admin) if changed else b)
    return tuple(out)


def origin_tls_spec(
    state: DesiredState, project: str, tls: OriginTls | None
) -> OriginTlsSpec | None:
    """A pool's TLS to its origins; None when it asks for nothing (today's behaviour). The
    client certificate is the project's, when it has one (else none is presented, and an
    origin that requires one refuses the edge)."""
    if tls is None or not tls.active:
        return None
    client = state.client_certs.get(project) if tls.client_certificate else None
    return OriginTlsSpec(
        client_cert=client.id if client is not None else None,
        verify=tls.verify,
        ca_pem=tls.ca_pem,
        pins=tuple(tls.pins),
        server_name=tls.server_name,
    )


def _stored_tls(raw: Any) -> OriginTls | None:
    if not raw:
        return None
    try:
        return OriginTls.model_validate(raw)
    except ValueError:
        return None  # stored by a newer version: nothing this one can render


def _lb_pool(state: DesiredState, lb: LoadBalancerState) -> PoolSpec | None:
    backends: dict[str, BackendSpec] = {}
    for b in dr_backends(state, lb):
        spec = resolve_backend(state, lb.project, b)
        if spec is not None and spec.key not in backends:
            backends[spec.key] = spec
    if not backends:
        return None
    options = {**DEFAULT_OPTIONS, **{k: v for k, v in lb.options.items() if v is not None}}
    algorithm = lb.algorithm if lb.algorithm in _ALGORITHMS else "round_robin"
    return PoolSpec(
        id=f"lb.{lb.project}.{lb.id}",
        algorithm=algorithm,
        backends=tuple(backends[k] for k in sorted(backends)),
        health_check=_health_check(lb.health_check),
        connect_timeout_s=float(options["connect_timeout_s"]),
        read_timeout_s=float(options["read_timeout_s"]),
        retries=int(options["retries"]),
        tls=origin_tls_spec(state, lb.project, _stored_tls(options.get("tls"))),
    )


def _origin_pool(state: DesiredState, project: str, origins: tuple[Origin, ...]) -> PoolSpec | None:
    backends: dict[str, BackendSpec] = {}
    for o in origins:
        if o.url is None:
            continue
        spec = resolve_backend(
            state, project, BackendState(address=o.url, weight=o.weight, backup=o.backup)
        )
        if spec is not None and spec.key not in backends:
            backends[spec.key] = spec
    if not backends:
        return None
    return PoolSpec(
        id=f"origin.{project}",
        algorithm="round_robin",
        backends=tuple(backends[k] for k in sorted(backends)),
        health_check=None,
        connect_timeout_s=DEFAULT_OPTIONS["connect_timeout_s"],
        read_timeout_s=DEFAULT_OPTIONS["read_timeout_s"],
        retries=int(DEFAULT_OPTIONS["retries"]),
        tls=origin_tls_spec(state, project, next((o.tls for o in origins if o.url), None)),
    )


def site_pool(state: DesiredState, project: str) -> PoolSpec | None:
    """The pool in front of which the project's domains are served, if any."""
    cdn = state.cdn.get(project)
    if cdn is not None and cdn.origins:
        for o in cdn.origins:
            if o.load_balancer is not None:
                lb = state.load_balancers.get((project, o.load_balancer))
                return _lb_pool(state, lb) if lb is not None else None
        return _origin_pool(state, project, cdn.origins)
    if cdn is None:
        own = [lb for (p, _), lb in state.load_balancers.items() if p == project]
        if len(own) == 1:
            return _lb_pool(state, own[0])
    return None


# Sites ----------------------------------------------------------------------------------------


def _rule(rule: CacheRule) -> CacheRuleSpec:
    key = rule.cache_key
    query: Literal["all", "none"] | tuple[str, ...] = (
        tuple(key.query) if isinstance(key.query, list) else key.query
    )
    return CacheRuleSpec(
        id=rule.id,
        pattern=rule.pattern,
        ttl=rule.ttl,
        bypass=rule.bypass,
        cache_key=CacheKeySpec(
            host=key.host,
            query=query,
            headers=tuple(key.headers),
            cookies=tuple(key.cookies),
        ),
        origin_cache_control=rule.origin_cache_control,
        stale_if_error=rule.stale_if_error,
        stale_while_revalidate=rule.stale_while_revalidate,
    )


def site_spec(
    state: DesiredState, project: str, domains: tuple[str, ...], pool: str | None
) -> SiteSpec:
    cdn = state.cdn.get(project)
    all_certified = all(d in state.certs for d in domains)
    if cdn is None:
        return SiteSpec(id=project, domains=domains, pool=pool, force_https=all_certified)
    sec = cdn.security
    rate = effective_rate(
        (sec.rate_limit.rate, sec.rate_limit.burst) if sec.rate_limit is not None else None,
        sec.under_attack,
    )
    return SiteSpec(
        id=project,
        domains=domains,
        pool=pool,
        cache_rules=tuple(_rule(r) for r in cdn.cache_rules),
        force_https=sec.force_https and all_certified,
        hsts_max_age=sec.hsts_max_age,
        hsts_include_subdomains=sec.hsts_include_subdomains,
        rate_limit=RateLimitSpec(rate=rate[0], burst=rate[1]) if rate is not None else None,
        ip_allow=tuple(sorted(set(sec.ip_allow))),
        ip_deny=tuple(sorted(set(sec.ip_deny))),
        client_limits=client_limits_spec(sec.limits, sec.under_attack),
        bots=bot_spec(sec.bots, cdn.bot_key),
        waf=waf_spec(sec.waf),
        headers=headers_spec(sec.headers),
    )


def client_limits_spec(limits: ClientLimits, under_attack: bool) -> ClientLimitsSpec | None:
    """The limits a site's edge applies (tightened under attack); None when it has none."""
    values = effective(limits, under_attack).model_dump()
    if not under_attack and all(v is None for v in values.values()):
        return None
    return ClientLimitsSpec(**values, under_attack=under_attack)


def headers_spec(policy: HeadersPolicy) -> HeadersSpec | None:
    """The policy as the edge renders it; None for the defaults (rendered as before)."""
    if policy.is_default():
        return None
    rules = []
    for key, name in HEADERS.items():
        rule = getattr(policy, key)
        rules.append(HeaderRuleSpec(name=name, action=rule.action, value=rule.value or ""))
    return HeadersSpec(rules=tuple(rules), remove_leaking=policy.remove_leaking)


@lru_cache(maxsize=65536)
def cert_spec(c: CertState) -> CertSpec:
    # Memoised: a pure function of an immutable value, built 10,000 times per snapshot else.
    return CertSpec(
        id=c.id,
        names=tuple(sorted(set(c.names))),
        cert_pem=c.cert_pem,
        key_pem=c.key_pem,
        not_after=c.not_after,
        ocsp_staple=c.ocsp_staple,
    )


@lru_cache(maxsize=65536)
def verification_spec(domain: str, token: str) -> VerificationSpec:
    # Memoised like certificates: 10,000 unverified domains are 10,000 models per revision.
    return VerificationSpec(domain=domain, token=token)


@dataclass(frozen=True)
class Served:
    """Everything of a snapshot but the node and the revision (shared by every node)."""

    sites: tuple[SiteSpec, ...]
    pools: tuple[PoolSpec, ...]
    certs: tuple[CertSpec, ...]
    zones: tuple[ZoneSpec, ...] = ()
    geo: GeoDnsSpec = field(default_factory=GeoDnsSpec)
    verifications: tuple[VerificationSpec, ...] = ()
    acme_http: tuple[AcmeHttpSpec, ...] = ()
    deployments: tuple[DeploymentState, ...] = ()  # of served sites, sorted by (project, id)
    ticket_keys: tuple[TicketKeySpec, ...] = ()
    # the live function versions of served sites, sorted by (project, name, version)
    functions: tuple[FunctionState, ...] = ()


def node_bundles(
    deployments: tuple[DeploymentState, ...], node: NodeSpec
) -> tuple[BundleSpec, ...]:
    """The bundle each project's site serves on ``node`` (see the module's docstring)."""
    chosen: dict[str, DeploymentState] = {}
    for d in deployments:
        if d.status == "active" and node.region in d.regions:
            chosen.setdefault(d.project, d)
    for d in deployments:
        # A region the rolling version leaves keeps the active one until it is superseded.
        rolling = d.status == "rolling" and node.region in d.regions
        if rolling or (d.status == "canary" and d.canary_node == node.id):
            chosen[d.project] = d
    return tuple(
        BundleSpec(
            site=d.project,
            deployment=d.id,
            version=d.version,
            hash=d.bundle,
            size=d.size,
            spa=d.spa,
            origin_paths=d.origin_paths,
            check_path=d.check_path,
        )
        for _, d in sorted(chosen.items())
    )


def node_prefetch(deployments: tuple[DeploymentState, ...], node: NodeSpec) -> tuple[str, ...]:
    """The bundles of versions on their canary that this node will serve when they roll out."""
    return tuple(
        sorted(
            {
                d.bundle
                for d in deployments
                if d.status == "canary" and d.canary_node != node.id and node.region in d.regions
            }
        )
    )


def served(state: DesiredState, *, zones: tuple[ZoneSpec, ...] | None = None) -> Served:
    """Everything but the node and the revision; ``zones``: the zones of ``state.dns``
    already built (``edgeplane.snapshot.cache`` builds only those that changed)."""
    sites: list[SiteSpec] = []
    pools: dict[str, PoolSpec] = {}
    certs: dict[str, CertSpec] = {}
    for project in sorted(state.domains):
        domains = tuple(sorted(set(state.domains[project])))
        if not domains:
            continue
        pool = site_pool(state, project)
        if pool is not None:
            pools[pool.id] = pool
        sites.append(site_spec(state, project, domains, pool.id if pool else None))
        for d in domains:
            c = state.certs.get(d)
            if c is not None and c.id not in certs:
                certs[c.id] = cert_spec(c)
    for c in client_certs(state, pools.values()):
        certs.setdefault(c.id, cert_spec(c))
    return Served(
        sites=tuple(sites),
        pools=tuple(pools[k] for k in sorted(pools)),
        certs=tuple(certs[k] for k in sorted(certs)),
        zones=build_zones(state.dns) if zones is None else zones,
        geo=build_geo(state.dns),
        verifications=tuple(
            verification_spec(z.name, z.token)
            for z in sorted(state.dns.zones, key=lambda z: z.name)
            if z.token
        ),
        acme_http=tuple(
            AcmeHttpSpec(token=t, key_authorization=k) for t, k in sorted(set(state.acme_http))
        ),
        deployments=tuple(
            sorted(
                (d for d in state.deployments if d.project in {s.id for s in sites}),
                key=lambda d: (d.project, d.id),
            )
        ),
        ticket_keys=state.ticket_keys,
        functions=served_functions(state.functions, {s.id for s in sites}),
    )


def served_functions(
    functions: Iterable[FunctionState], site_ids: set[str]
) -> tuple[FunctionState, ...]:
    """The function versions of the served sites (a project without a served domain has no
    site: its functions would answer nowhere)."""
    return tuple(f for f in functions if f.project in site_ids)


def client_certs(state: DesiredState, pools: Iterable[PoolSpec]) -> list[CertState]:
    """The client certificates ``pools`` present to their origins."""
    wanted = {p.tls.client_cert for p in pools if p.tls is not None and p.tls.client_cert}
    if not wanted:
        return []
    return sorted((c for c in state.client_certs.values() if c.id in wanted), key=lambda c: c.id)


def assemble(base: Served, node: NodeSpec, revision: int, *, functions: bool = False) -> EdgeConfig:
    """The node's snapshot; ``functions``: whether the node runs edge functions
    (``snapshot.functions.runs_functions``), else it gets none."""
    return EdgeConfig(
        revision=revision,
        node=node,
        sites=base.sites,
        pools=base.pools,
        certs=base.certs,
        zones=base.zones,
        geo=base.geo,
        verifications=base.verifications,
        acme_http=base.acme_http,
        ticket_keys=base.ticket_keys,
        bundles=node_bundles(base.deployments, node),
        prefetch=node_prefetch(base.deployments, node),
        functions=node_functions(node, base.functions, capable=functions),
    )


def snapshot(
    state: DesiredState, node: NodeSpec, revision: int, *, functions: bool = False
) -> EdgeConfig:
    """The node's snapshot of ``state`` at ``revision``: pure and deterministic."""
    return assemble(served(state), node, revision, functions=functions)
