"""The snapshot an edge node serves: everything its engines need, nothing else.

``EdgeConfig`` is computed by the control plane (``edgeplane.snapshot.build``) as a pure
function of the desired state and the node, served to the agent by long-poll, saved on the
node's disk and rendered into engine files (``edgeplane.node.nginx.render``). Its ``content_hash``
covers everything but the revision: a revision that changes nothing a node serves (a purge, an
inventory edit) hashes the same and the agent does not reload.

On the wire a snapshot travels as an ``EdgeManifest``: everything of the ``EdgeConfig`` inline
but its zones and certificates, which it names by the sha256 of their JSON bodies
(``object_hash``). The node fetches only the objects it lacks (``POST
/api/v1/edge/nodes/{id}/objects``) and keeps them in a content-addressed store on its disk, so
a change to one zone of 10,000 sends, stores and applies one zone. The manifest carries the
snapshot's hashes, computed once by the control plane: the agent trusts them
(``EdgeConfig.with_digests``) instead of hashing megabytes again.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping
from typing import Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
)
from pydantic.dataclasses import dataclass

from edgeplane.protocol.bots import BotSpec
from edgeplane.protocol.headers import HeadersSpec
from edgeplane.protocol.origin_tls import OriginTlsSpec


class Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CacheKeySpec(Frozen):
    """What the cache key is made of, beyond the project and the path (always in)."""

    host: bool = True
    query: Literal["all", "none"] | tuple[str, ...] = "all"
    headers: tuple[str, ...] = ()  # lower-case header names
    cookies: tuple[str, ...] = ()


class CacheRuleSpec(Frozen):
    """One cache rule; a site's rules are ordered and the first match wins.

    ``pattern`` is one of: ``/exact/path``, ``/prefix/*`` (one or two segments deep, or ``/*``
    for everything) or ``*.ext``.
    """

    id: str
    pattern: str
    ttl: int = Field(ge=0, description="seconds")
    bypass: bool = False
    cache_key: CacheKeySpec = CacheKeySpec()
    origin_cache_control: Literal["honour", "override"] = "override"
    stale_if_error: bool = True
    stale_while_revalidate: bool = False


class BackendSpec(Frozen):
    """A backend of a pool. ``key`` names it stably (in health reports, logs and tests)."""

    key: str
    scheme: Literal["http", "https"] = "http"
    host: str
    port: int
    weight: int = Field(1, ge=1, le=1000)
    backup: bool = False
    state: Literal["active", "draining", "disabled"] = "active"
    # Out of rotation until a check of this node passed (``node.agent.health``); left out of
    # the JSON while False, so that a backend without it dumps and hashes as before and
    # agents of protocol 1 (which refuse unknown fields) take the pools that do not use it.
    wait_for_check: bool = Field(False, exclude_if=lambda v: not v)


class HealthCheckSpec(Frozen):
    protocol: Literal["http", "https", "tcp"] = "http"
    path: str = "/"
    host: str | None = None  # the Host header of the checks; the backend's host when None
    interval_s: float = 5.0
    timeout_s: float = 2.0
    healthy_threshold: int = 2  # rise
    unhealthy_threshold: int = 3  # fall
    expected_status: str = "200-399"


class PoolSpec(Frozen):
    """A set of backends behind one name: a load balancer, or a project's origin URLs."""

    id: str  # "lb.<project>.<lb id>" or "origin.<project>"
    algorithm: Literal["round_robin", "least_conn", "ip_hash", "weighted", "dynamic"]
    backends: tuple[BackendSpec, ...]
    health_check: HealthCheckSpec | None = None  # None: passive checks only
    connect_timeout_s: float = 2.0
    read_timeout_s: float = 30.0
    retries: int = Field(1, ge=0, le=5, description="tries on the next backend (idempotent)")
    # client certificate and verification (private origins); left out of the JSON when None,
    # as the later fields of SiteSpec are: a pool without them dumps and hashes as before
    tls: OriginTlsSpec | None = Field(None, exclude_if=lambda v: v is None)


class RateLimitSpec(Frozen):
    rate: int = Field(ge=1, description="requests per second per client address")
    burst: int = Field(0, ge=0)


class ClientLimitsSpec(Frozen):
    """A site's per-client limits as the edge applies them (under attack already tightened:
    ``edgeplane.model.client_limits.effective``); None: the edge's default. What nginx applies
    per site and what per node: ``edgeplane.node.nginx.render_limits``."""

    max_connections: int | None = None  # requests in progress per client address
    header_timeout_s: int | None = None
    body_timeout_s: int | None = None
    send_timeout_s: int | None = None
    keepalive_timeout_s: int | None = None
    max_header_bytes: int | None = None
    max_body_bytes: int | None = None
    under_attack: bool = False


class WafExclusionSpec(Frozen):
    """Rules (ids, or ranges ``first-last``) off for the site, under ``path`` when given."""

    rules: tuple[str, ...]
    path: str | None = None


class WafSpec(Frozen):
    """A site's web application firewall (``edgeplane.model.waf``; absent when off)."""

    mode: Literal["detect", "block"]
    paranoia_level: int = Field(1, ge=1, le=4)
    anomaly_threshold: int = Field(5, ge=1)
    exclusions: tuple[WafExclusionSpec, ...] = ()


class SiteSpec(Frozen):
    """A project as the edge serves it: its domains in front of its origin pool."""

    id: str  # the project id; also the first part of every cache key of the site
    domains: tuple[str, ...]
    pool: str | None  # a PoolSpec.id; None: the site answers 502 (no origin configured)
    cache_rules: tuple[CacheRuleSpec, ...] = ()
    force_https: bool = False
    hsts_max_age: int = 0  # 0: no Strict-Transport-Security header
    hsts_include_subdomains: bool = False
    rate_limit: RateLimitSpec | None = None
    ip_allow: tuple[str, ...] = ()  # CIDRs; when any, every other address is refused (403)
    ip_deny: tuple[str, ...] = ()
    # Fields added since protocol version 1 are left out of the JSON while unused (None): a
    # site that uses none dumps (and hashes) as before, and agents of protocol 1, which refuse
    # unknown fields, still take the snapshots of projects that don't use them.
    client_limits: ClientLimitsSpec | None = Field(None, exclude_if=lambda v: v is None)
    bots: BotSpec | None = Field(None, exclude_if=lambda v: v is None)  # protocol/bots.py
    waf: WafSpec | None = Field(None, exclude_if=lambda v: v is None)  # None: WAF off
    # the security headers policy; None: the defaults
    headers: HeadersSpec | None = Field(None, exclude_if=lambda v: v is None)


class CertSpec(Frozen):
    """A certificate and its key, served for ``names`` (SNI, exact or ``*.wildcard``), with the
    OCSP response the edge staples, when the control plane holds a fresh one."""

    id: str  # sha256 of the certificate chain PEM
    names: tuple[str, ...]
    cert_pem: str
    key_pem: str
    not_after: str  # ISO 8601
    ocsp_staple: str | None = None  # base64 of a DER OCSP response, checked by the control plane

    @model_serializer(mode="wrap")
    def _without_empty_staple(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # A certificate without a staple dumps (and so hashes, as a stored object) as before
        # the field existed: nodes keep the objects they hold.
        doc: dict[str, Any] = handler(self)
        if doc.get("ocsp_staple") is None:
            doc.pop("ocsp_staple", None)
        return doc


class RRSetSpec(Frozen):
    """One RRset of a zone, in PowerDNS's terms: ``name`` absolute with the trailing dot,
    ``type`` one of A AAAA CNAME TXT MX NS SRV CAA SOA ALIAS LUA, ``records`` the contents in
    presentation format (TXT quoted, MX ``10 mail.example.com.``, LUA ``A "<lua code>"``),
    sorted."""

    name: str
    type: str
    ttl: int
    records: tuple[str, ...]


class DnssecKeySpec(Frozen):
    """A zone's signing key (a combined signing key, flags 257), made by the control plane so
    that every node signs with the same key and one DS record at the registrar covers all."""

    id: str  # short sha256 of private_key
    algorithm: Literal["ECDSAP256SHA256"] = "ECDSAP256SHA256"
    flags: int = 257
    private_key: str  # ISC "Private-key-format: v1.2" text, as PowerDNS imports it


class ZoneSpec(Frozen):
    """An authoritative zone as every edge node's DNS server serves it.

    ``name`` is absolute (``example.com.``); ``rrsets`` hold everything, SOA and NS included,
    sorted by (name, type). ``serial`` is the SOA serial (also inside the SOA record). With
    ``dnssec`` the zone is signed by the DNS server (live signing)."""

    name: str
    serial: int
    dnssec: bool = False
    dnssec_keys: tuple[DnssecKeySpec, ...] = ()  # with dnssec: the keys to sign with
    rrsets: tuple[RRSetSpec, ...] = ()


@dataclass(frozen=True, slots=True, config=ConfigDict(extra="forbid"))
class VerificationSpec:
    """A domain's ownership token, served over HTTP at
    ``/.well-known/edgeplane-verification/<token>`` (file verification).

    A slotted dataclass rather than a model: a snapshot holds one per verified domain, and at
    10,000 the models (each with its ``__dict__`` and set of fields) took 6.2 MiB where these
    take 2.0, on the control plane and on every node. Validated and dumped as a model is."""

    domain: str
    token: str


class TicketKeySpec(Frozen):
    """A TLS session ticket key (80 bytes, base64), the same on every node so that a client
    resumes its session on any of them. ``id`` names it without revealing it."""

    id: str
    key: str = Field(repr=False)


class AcmeHttpSpec(Frozen):
    """An ACME HTTP-01 answer: ``GET /.well-known/acme-challenge/<token>`` returns
    ``key_authorization`` on every node, for every host."""

    token: str = Field(pattern=r"^[A-Za-z0-9_-]{1,255}$")
    key_authorization: str


class BundleSpec(Frozen):
    """A static bundle a site serves on this node (an edge deployment version).

    The node fetches the archive ``hash`` (sha256) once, verifies and unpacks it, and serves its
    files in front of the site's origin: a path the bundle does not hold goes to the origin
    (or, with ``spa``, a path with no file extension gets ``/index.html``); ``origin_paths``
    always go to the origin."""

    site: str  # SiteSpec.id
    deployment: str
    version: int
    hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int
    spa: bool = False
    origin_paths: tuple[str, ...] = ()
    check_path: str | None = None


class FunctionRouteSpec(Frozen):
    """Where a function answers on a site: ``host`` (one of the site's domains, or ``*`` for
    every one), ``path`` (exact, or a prefix when it ends with ``*``) and ``methods`` (none:
    every method)."""

    host: str
    path: str
    methods: tuple[str, ...] = ()


class FunctionSpec(Frozen):
    """An edge function version this node runs (``edgeplane.snapshot.functions``): its code
    and environment for the runtime's isolate, its limits, and its routes for nginx.

    ``site`` is the project (``SiteSpec.id``); the runtime keys the function as
    ``<site>/<name>`` and the version as ``<site>/<name>@<version>``. ``hosts`` are the
    project's domains (a ``fetch`` to one of them goes to the node's own nginx)."""

    site: str
    name: str
    version: int
    id: str  # the version's id (fnv-...)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    code: str = Field(repr=False)
    env: dict[str, str] = Field(default_factory=dict)
    secrets: dict[str, str] = Field(default_factory=dict, repr=False)
    timeout_ms: int = 5000
    memory_mb: int = 128
    routes: tuple[FunctionRouteSpec, ...] = ()
    hosts: tuple[str, ...] = ()
    check_path: str | None = None

    @property
    def key(self) -> str:
        return f"{self.site}/{self.name}"


def function_routes(functions: tuple[FunctionSpec, ...]) -> bytes:
    """What nginx renders of ``functions`` (which function answers where), as canonical JSON:
    the part of them in the http hash. Their code, environment, secrets and limits are not
    (a new version with the same routes reloads no nginx)."""
    doc = [
        {"site": f.site, "name": f.name, "routes": [r.model_dump(mode="json") for r in f.routes]}
        for f in functions
    ]
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


class GeoRegionSpec(Frozen):
    """A region with edge nodes, where it is: GeoDNS ranks the regions by distance."""

    code: str
    latitude: float
    longitude: float


class GeoCandidateSpec(Frozen):
    region: str
    addresses: tuple[str, ...]  # sorted


class GeoAnswerSpec(Frozen):
    """What one proxied LUA record of the zones answers, spelled out for a DNS server that
    answers it without Lua (``edgeplane.node.powerdns.geo``): the nearest candidate region's
    addresses, or ``everyone`` for a client with no location. The candidates are the *live*
    nodes (``edgeplane.snapshot.zones.build_geo``), the LUA record's own text the addressed
    ones: a change of live nodes changes these answers and no zone."""

    record: str  # the LUA record's content in the zones (``A "<lua>"``): the key
    type: Literal["A", "AAAA"]
    candidates: tuple[GeoCandidateSpec, ...]  # sorted by region
    everyone: tuple[str, ...]


class GeoDnsSpec(Frozen):
    regions: tuple[GeoRegionSpec, ...] = ()  # every region with an edge node, by code
    answers: tuple[GeoAnswerSpec, ...] = ()  # one per distinct LUA record, by record


class NodeSpec(Frozen):
    id: str
    name: str
    region: str


class EdgeConfig(Frozen):
    revision: int
    node: NodeSpec
    sites: tuple[SiteSpec, ...] = ()
    pools: tuple[PoolSpec, ...] = ()
    certs: tuple[CertSpec, ...] = ()
    zones: tuple[ZoneSpec, ...] = ()  # sorted by name
    verifications: tuple[VerificationSpec, ...] = ()  # sorted by domain
    acme_http: tuple[AcmeHttpSpec, ...] = ()  # sorted by token; files, not nginx config
    # TLS session ticket keys: the first encrypts, all decrypt (see snapshot.tickets)
    ticket_keys: tuple[TicketKeySpec, ...] = ()
    bundles: tuple[BundleSpec, ...] = ()  # sorted by site; this node's (varies by region)
    # Bundles to fetch ahead, not served yet (a version on its canary: the rest of its regions
    # have it on disk when it rolls out). Sorted; not part of nginx's configuration.
    prefetch: tuple[str, ...] = ()
    geo: GeoDnsSpec = GeoDnsSpec()  # the zones' LUA records spelled out (not nginx's)
    # The edge functions this node runs (``snapshot.functions.node_functions``), sorted by
    # (site, name); left out of the JSON while empty (older agents, unchanged hashes). Only
    # their routes are nginx's (``function_routes``): code, environment, secrets and limits
    # go to the runtime without a reload.
    functions: tuple[FunctionSpec, ...] = Field((), exclude_if=lambda v: not v)

    def content_hash(self) -> str:
        return self._content_digest

    def with_digests(self, content: str, http: str) -> Self:
        """This config, its hashes set to those the control plane computed (``EdgeManifest``):
        the agent trusts them rather than dumping megabytes of JSON to hash them again."""
        self.__dict__["_content_digest"] = content
        self.__dict__["_http_digest"] = http
        return self

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        copy = super().model_copy(update=update, deep=deep)
        copy.__dict__.pop("_content_digest", None)  # the copy may differ: hash it afresh
        copy.__dict__.pop("_http_digest", None)
        return copy

    def http_hash(self) -> str:
        """The hash of nginx's configuration: everything but the revision, the DNS zones and
        geo answers (a change of which edge nodes are live changes the geo answers only) and
        the ACME HTTP-01 answers
        (files nginx serves as they are): changes of those reload no nginx."""
        return self._http_digest

    @functools.cached_property
    def _http_digest(self) -> str:
        body = self.model_dump(
            mode="json", exclude={"revision", "zones", "acme_http", "prefetch", "geo", "functions"}
        )
        if self.functions:
            body["functions"] = json.loads(function_routes(self.functions))
        raw = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(raw).hexdigest()[:16]

    @functools.cached_property
    def _content_digest(self) -> str:
        # Computed once per instance (a snapshot of 10,000 domains is megabytes of JSON);
        # cached properties are not fields: equality and dumps ignore them.
        body = self.model_dump(mode="json", exclude={"revision"})
        raw = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(raw).hexdigest()[:16]


def canonical_body(doc: Any) -> bytes:
    """The canonical JSON of an object (sorted keys, no spaces, ASCII): what its hash covers.
    The node derives the same bytes again from the parsed object."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def object_hash(body: bytes) -> str:
    """The address of an object (a ``ZoneSpec`` or ``CertSpec`` body) in the edge's
    content-addressed store: the sha256 of its JSON body."""
    return hashlib.sha256(body).hexdigest()


class EdgeManifest(Frozen):
    """A node's snapshot as the long-poll sends it (``ConfigPoll.manifest``): the fields of
    ``EdgeConfig`` inline but zones and certificates, named by ``object_hash``.

    ``hash`` is the snapshot's content hash (everything but the revision, as
    ``EdgeConfig.content_hash``) and ``http_hash`` the hash of what nginx serves (as
    ``EdgeConfig.http_hash``); both are computed by the control plane once per revision."""

    revision: int
    hash: str
    http_hash: str
    node: NodeSpec
    sites: tuple[SiteSpec, ...] = ()
    pools: tuple[PoolSpec, ...] = ()
    certs: tuple[str, ...] = ()  # object hashes of the CertSpecs, sorted by certificate id
    zones: dict[str, str] = Field(default_factory=dict)  # zone name -> object hash, sorted
    verifications: tuple[VerificationSpec, ...] = ()
    acme_http: tuple[AcmeHttpSpec, ...] = ()
    ticket_keys: tuple[TicketKeySpec, ...] = ()
    geo: GeoDnsSpec = GeoDnsSpec()
    bundles: tuple[BundleSpec, ...] = ()
    prefetch: tuple[str, ...] = ()
    functions: tuple[FunctionSpec, ...] = Field((), exclude_if=lambda v: not v)

    def objects(self) -> list[str]:
        """Every object this manifest names."""
        return [*self.certs, *self.zones.values()]

    def resolve(self, certs: tuple[CertSpec, ...]) -> EdgeConfig:
        """The ``EdgeConfig`` nginx renders (zones are applied by reference, so none here),
        with the control plane's hashes."""
        config = EdgeConfig(
            revision=self.revision,
            node=self.node,
            sites=self.sites,
            pools=self.pools,
            certs=certs,
            verifications=self.verifications,
            acme_http=self.acme_http,
            ticket_keys=self.ticket_keys,
            geo=self.geo,
            bundles=self.bundles,
            prefetch=self.prefetch,
            functions=self.functions,
        )
        return config.with_digests(self.hash, self.http_hash)
