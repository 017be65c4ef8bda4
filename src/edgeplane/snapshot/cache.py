"""The snapshot of the newest revision, built once and shared by every node's long-poll.

Every node's snapshot differs only by its ``node`` (and the bundles chosen for it), so one
build of the served state serves them all. A new revision is built in one of two ways:

- **from the previous revision's parts** (``snapshot.parts``), when the revisions since
  changed a few domains (their audit events and zone stamps say which:
  ``snapshot.changes``): only those domains are read again (``load_domain_parts``) and their
  zones, certificates, sites and manifest entries rebuilt; the rest is reused, serialised;
- **in full** otherwise: every domain, zone and certificate read (``load_state``) and cut
  into new parts, joined the same way. That is the first build, and the fallback whenever
  the cache cannot tell what changed: the edge nodes or their regions, an edge
  deployment's regions, a certificate or OCSP staple passing its time, an event of a kind
  the parts do not track (CDN configs, load balancers, servers, DR configs and their
  failovers, deleted projects), many
  revisions or domains at once.

Either way the result is, byte for byte, that of ``served`` serialised whole, which is what
a cache made with ``incremental=False`` builds for every revision: the reference
``tests/api/test_snapshot_parts.py`` checks the parts against, over a sequence of changes.
Another replica may have written the revisions in between: the parts only ever follow the
database's events, so they stay right whoever wrote them. In a full build, each zone's
``ZoneSpec`` is cached by what it is made of (the zone's state, which carries its revision,
and the edge nodes and regions it reads; not liveness, which no zone reads), each
certificate's ``CertSpec`` by the certificate (its key decrypted once, not once per
revision); each object is serialised and
hashed once (``object_hash``) and served by hash to the nodes that lack it (``objects``). The
part of the manifest every node shares (sites, pools, references to zones and certificates,
...) is serialised and hashed once per revision; per node only its node, bundles and prefetch
list are.

When revision numbers may have been used twice (a failover that lost the last transactions,
a restore: ``services.realign``, which then moves the counter past them), the cache forgets
everything it built and read (``clear``); a cache of another process does the same when the
revisions it builds include that realignment's audit event. The next build is a full one.

The full ``EdgeConfig`` of a node (the long-poll without ``refs``, kept for older agents) is
assembled and serialised on demand only. The control plane makes one ``SnapshotCache`` for its
database (``create_app``) and passes it to whoever serves snapshots or compares a node's hash
with the current one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import TypeAdapter
from sqlalchemy import select
from sqlalchemy.orm import Session

from edgeplane import collector
from edgeplane.protocol.config import (
    AcmeHttpSpec,
    BundleSpec,
    CertSpec,
    EdgeConfig,
    FunctionSpec,
    NodeSpec,
    PoolSpec,
    SiteSpec,
    TicketKeySpec,
    VerificationSpec,
    ZoneSpec,
    function_routes,
)
from edgeplane.protocol.delta import SharedFields, shared_changes
from edgeplane.secrets import SecretBox
from edgeplane.snapshot.build import (
    CertState,
    DesiredState,
    Served,
    assemble,
    cert_spec,
    node_bundles,
    node_prefetch,
    served,
)
from edgeplane.snapshot.changes import FOREVER, changes_since, next_expiry
from edgeplane.snapshot.functions import load_functions, node_functions
from edgeplane.snapshot.load import (
    CertCache,
    RecordsCache,
    load_acme_http,
    load_deployments,
    load_dns_env,
    load_domain_parts,
    load_state,
    routing,
)
from edgeplane.snapshot.parts import DomainPart, Emitted, Parts, StoredObject, stored
from edgeplane.snapshot.tickets import TICKET_SECRET, ticket_keys
from edgeplane.snapshot.zones import DnsState, ZoneState, build_zone
from edgeplane.store import revision as revisions
from edgeplane.store.tables import AuditRow, utcnow

log = logging.getLogger(__name__)

KEEP_REVISIONS = 8  # objects of this many revisions stay fetchable (a node a little behind)
DELTA_BASES = 4  # a node that holds one of the last revisions built gets the changes from it

_SITES = TypeAdapter(tuple[SiteSpec, ...])
_POOLS = TypeAdapter(tuple[PoolSpec, ...])
_VERIFICATIONS = TypeAdapter(tuple[VerificationSpec, ...])
_ACME = TypeAdapter(tuple[AcmeHttpSpec, ...])
_BUNDLES = TypeAdapter(tuple[BundleSpec, ...])
_TICKETS = TypeAdapter(tuple[TicketKeySpec, ...])
_FUNCTIONS = TypeAdapter(tuple[FunctionSpec, ...])


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(len(p).to_bytes(8, "big"))
        h.update(p)
    return h.hexdigest()[:16]


@dataclass
class RevisionView:
    """The shared part of one revision, built and serialised once."""

    revision: int
    base: Served
    zones: dict[str, StoredObject]  # zone name -> its object
    certs: tuple[StoredObject, ...]  # sorted by certificate id
    shared: bytes  # the manifest's shared fields, a JSON object's inside
    shared_digest: bytes
    http_digest: bytes  # of the fields nginx serves
    objects: dict[str, bytes] = field(default_factory=dict)  # hash -> body
    fields: SharedFields | None = None  # what deltas from and to it compare (made once)


@dataclass(frozen=True)
class NodeSnapshot:
    """One node's snapshot of a revision: its hashes and its manifest body, ready to send."""

    revision: int
    hash: str
    http_hash: str
    manifest: bytes  # EdgeManifest JSON
    view: RevisionView
    node: NodeSpec
    # the manifest's last fields: the node's bundles and prefetch list (and its functions)
    tail: bytes = b""
    functions: bool = False  # the node runs edge functions (``runs_functions``)

    @property
    def config(self) -> EdgeConfig:
        """The full snapshot (zones and certificates inline): assembled on demand."""
        config = assemble(self.view.base, self.node, self.revision, functions=self.functions)
        return config.with_digests(self.hash, self.http_hash)

    @property
    def body(self) -> bytes:
        """``config`` as JSON (the long-poll without ``refs``)."""
        return self.config.model_dump_json().encode()


class UnknownObjects(Exception):
    def __init__(self, missing: list[str]) -> None:
        super().__init__(", ".join(missing))
        self.missing = missing


def _zone_env(dns: DnsState) -> tuple[str, str]:
    """What a zone's spec reads besides its own state: the nameservers (every zone) and, for
    zones with proxied records, the regions' coordinates as well. Not which nodes are live:
    no zone depends on it (``EdgeConfig.geo`` does). As text: a string hashes once, where the
    tuples were hashed again for each of 10,000 zones (about a third of a revision's build)."""
    static = tuple((n.id, n.name, n.region, n.address) for n in dns.nodes)
    full = (static, tuple(sorted(dns.regions.items())))
    return repr(static), repr(full)


def _without_liveness(env: DnsState) -> DnsState:
    """``env`` with every node live: what the zones read of it."""
    nodes = tuple(dataclasses.replace(n, live=True) for n in env.nodes)
    return dataclasses.replace(env, nodes=nodes, liveness_revision=0)


Routing = Mapping[str, tuple[tuple[str, ...] | None, int]]


def _parts_of(
    state: DesiredState,
    env: DnsState,
    zones: tuple[ZoneSpec, ...],
    zone_refs: dict[str, StoredObject],
    keys: dict[str, tuple[str, str]],
    known_certs: dict[str, tuple[CertSpec, StoredObject]],
) -> Parts:
    """``state`` in parts (``snapshot.parts``), its zone and certificate objects reused."""
    project_of = {d: p for p, names in state.domains.items() for d in names}
    by_zone = {z.name: (z, zone_refs[z.name]) for z in zones}
    domains: list[DomainPart] = []
    for zone in sorted(state.dns.zones, key=lambda z: z.name):
        project = project_of.get(zone.name)
        domains.append(
            DomainPart(
                name=zone.name,
                project=project or "",
                active=project is not None,
                zone=zone,
                cert=state.certs.get(zone.name) if project is not None else None,
                cert_key=keys.get(zone.name),
            )
        )
    # Only what the parts read of the state: its zones and certificates would stay alive else.
    shared = DesiredState(
        cdn=state.cdn,
        load_balancers=state.load_balancers,
        servers=state.servers,
        placement=state.placement,
        client_certs=state.client_certs,
    )
    parts = Parts(shared=shared, env=env)
    parts.fill(domains, lambda zone: by_zone[f"{zone.name}."], known_certs)
    return parts


def _node_part(
    view: RevisionView, node: NodeSpec, capable: bool = False
) -> tuple[str, str, bytes, bytes]:
    """A node's hashes of ``view`` (content, http), its node JSON and the manifest's tail
    (``,"bundles":...,"prefetch":...`` and ``,"functions":...`` when it runs any: a node
    without functions hashes as before they existed). ``capable``: the node runs edge
    functions. Only the functions' routes are in the http hash (``function_routes``)."""
    bundles = _BUNDLES.dump_json(node_bundles(view.base.deployments, node))
    prefetch = json.dumps(list(node_prefetch(view.base.deployments, node))).encode()
    node_json = node.model_dump_json().encode()
    tail = b',"bundles":' + bundles + b',"prefetch":' + prefetch
    functions = node_functions(node, view.base.functions, capable=capable)
    if not functions:
        content = _digest(view.shared_digest, node_json, bundles, prefetch)
        http = _digest(view.http_digest, node_json, bundles)
        return content, http, node_json, tail
    every = _FUNCTIONS.dump_json(functions)
    content = _digest(view.shared_digest, node_json, bundles, prefetch, every)
    http = _digest(view.http_digest, node_json, bundles, function_routes(functions))
    return content, http, node_json, tail + b',"functions":' + every


def _shared_fields(view: RevisionView) -> SharedFields:
    if view.fields is not None:
        return view.fields
    base = view.base
    view.fields = SharedFields.model_construct(
        sites=base.sites,
        pools=base.pools,
        certs=tuple(o.hash for o in view.certs),
        zones={z.name: view.zones[z.name].hash for z in base.zones},  # in the manifest's order
        verifications=base.verifications,
        acme_http=base.acme_http,
    )
    return view.fields


def _shared_delta(base: RevisionView, view: RevisionView, ratio: float) -> bytes | None:
    """The changes of the shared fields from ``base`` to ``view`` (a JSON object's inside,
    the fields of ``ManifestDelta``); None when they are over ``ratio`` of the size of
    ``view``'s shared fields whole."""
    parts = [
        b'"' + name.encode() + b'":' + change.model_dump_json().encode()
        for name, change in shared_changes(_shared_fields(base), _shared_fields(view)).items()
    ]
    parts.append(b'"ticket_keys":' + _TICKETS.dump_json(view.base.ticket_keys))
    parts.append(b'"geo":' + view.base.geo.model_dump_json().encode())
    body = b",".join(parts)
    return body if len(body) < ratio * len(view.shared) else None


# The audit event of a realignment of the revision counter (``services.realign`` writes it):
# revisions before it may have been used twice, with other content.
REALIGN_KIND, REALIGN_ACTION = "revision", "realign"


def realigned_since(session: Session, after: int, upto: int) -> bool:
    """Whether the counter was realigned in the revisions ``(after, upto]``."""
    found = session.scalar(
        select(AuditRow.id)
        .where(
            AuditRow.kind == REALIGN_KIND,
            AuditRow.action == REALIGN_ACTION,
            AuditRow.revision > after,
            AuditRow.revision <= upto,
        )
        .limit(1)
    )
    return found is not None


class SnapshotCache:
    """The snapshot of the newest revision seen, built once, and each node's view of it."""

    def __init__(self, box: SecretBox, *, incremental: bool = True) -> None:
        self._box = box
        self._incremental_on = incremental  # off: every revision is built in full
        self._lock = threading.Lock()
        self._view: RevisionView | None = None
        self._nodes: dict[tuple[NodeSpec, bool], NodeSnapshot] = {}
        self._views: deque[RevisionView] = deque(maxlen=DELTA_BASES)  # the last built
        self._deltas: dict[int, bytes | None] = {}  # base revision -> shared changes (JSON)
        self._delta_lock = threading.Lock()
        self._certs: CertCache = {}
        self._records: RecordsCache = {}
        self._zone_objects: dict[tuple[object, ...], tuple[ZoneSpec, StoredObject]] = {}
        self._cert_objects: dict[CertState, StoredObject] = {}
        self._recent: deque[dict[str, bytes]] = deque(maxlen=KEEP_REVISIONS)
        self._parts: Parts | None = None  # the last revision built, in parts
        self._routes: Routing = {}  # the deployments' routing it was built with
        # When a certificate or staple it holds starts or stops being valid (then: in full).
        self._horizon: datetime = FOREVER
        self._changes: set[str] = set()  # the domains the revision to build changed
        self.delta_ratio = 1.0  # a delta of this share of the manifest or more: it whole
        self.builds = 0  # revisions built (tests and figures)
        self.incremental_builds = 0  # of which from the previous one's parts
        self.zones_built = 0  # zone specs built, over all revisions
        self.last_build: tuple[str, float] = ("", 0.0)  # how (see ``_build``), ms

    # ------------------------------------------------------------------ building

    def _zones(self, dns: DnsState) -> tuple[tuple[ZoneSpec, ...], dict[str, StoredObject]]:
        static, full = _zone_env(dns)
        fresh: dict[tuple[object, ...], tuple[ZoneSpec, StoredObject]] = {}
        specs: list[ZoneSpec] = []
        refs: dict[str, StoredObject] = {}
        zone: ZoneState
        for zone in sorted(dns.zones, key=lambda z: z.name):
            proxied = any(r.proxied for r in zone.records)
            key = (zone, full if proxied else static)
            hit = self._zone_objects.get(key) or fresh.get(key)
            if hit is None:
                spec = build_zone(zone, dns)
                hit = (spec, stored(spec))
                self.zones_built += 1
            fresh[key] = hit
            specs.append(hit[0])
            refs[hit[0].name] = hit[1]
        self._zone_objects = fresh
        return tuple(specs), refs

    def _cert_refs(self, certs: Iterable[tuple[CertState, CertSpec]]) -> tuple[StoredObject, ...]:
        fresh: dict[CertState, StoredObject] = {}
        out: list[StoredObject] = []
        for state, spec in certs:
            hit = self._cert_objects.get(state) or fresh.get(state)
            if hit is None:
                hit = stored(spec)
            fresh[state] = hit
            out.append(hit)
        self._cert_objects = fresh
        return tuple(out)

    def _build(self, session: Session) -> tuple[RevisionView, str]:
        """The newest revision's view, and how it was built ("incremental", or why not)."""
        # The revision first: the rows read after it are at least as new as it.
        current = revisions.current(session)
        realigned = self._view is not None and realigned_since(
            session, self._view.revision, current
        )
        if realigned:  # maybe by another process: what it built before is not to be trusted
            self._forget()
        now = utcnow()
        # The shared inputs before the rows that read them: if they change in between, the
        # next build sees them differ from these and builds in full.
        env = load_dns_env(session)
        routes = routing(session)
        why = self._unchanged_inputs(session, current, now, env, routes)
        if why is None:
            return self._incremental(session, current, now, env, routes), "incremental"
        view = self._full(session, current, now, env, routes)
        return view, "the revision counter was realigned" if realigned else why

    def _unchanged_inputs(
        self,
        session: Session,
        current: int,
        now: datetime,
        env: DnsState,
        routes: Routing,
    ) -> str | None:
        """None when the revision can be built from the previous one's parts; else why not."""
        base, parts = self._view, self._parts
        if not self._incremental_on:
            return "incremental builds are off"
        if base is None or parts is None:
            return "no previous revision"
        if base.revision >= current:
            return f"revision {current} is not newer than {base.revision}"
        if parts.env != env:
            if _without_liveness(parts.env) != _without_liveness(env):
                return "the edge nodes or their regions changed"
            parts.relive(env)  # no zone reads liveness: the geo answers alone change
        if routes != self._routes:
            return "an edge deployment's regions changed"
        if now >= self._horizon:
            return "a certificate or OCSP staple expired or became valid"
        changes = changes_since(session, base.revision, current)
        if changes.full:
            return changes.reason
        if changes.servers and parts.shared.load_balancers:
            return "a server changed (a load balancer's backend, maybe)"
        self._changes = changes.domains
        return None

    def _incremental(
        self, session: Session, current: int, now: datetime, env: DnsState, routes: Routing
    ) -> RevisionView:
        parts = self._parts
        assert parts is not None
        changed = load_domain_parts(
            session,
            self._box,
            self._changes,
            routes,
            now,
            certs=self._certs,
            records=self._records,
        )

        def zone_object(zone: ZoneState) -> tuple[ZoneSpec, StoredObject]:
            spec = build_zone(zone, env)
            self.zones_built += 1
            return spec, stored(spec)

        parts.apply(changed, zone_object)
        self._horizon = min(self._horizon, next_expiry(session, now, sorted(self._changes)))
        emitted = parts.emit(
            load_acme_http(session),
            ticket_keys(self._box.derive(TICKET_SECRET), now.timestamp()),
            load_deployments(session),
            load_functions(session, self._box),
        )
        return self._view_of(current, emitted)

    def _full(
        self, session: Session, current: int, now: datetime, env: DnsState, routes: Routing
    ) -> RevisionView:
        keys: dict[str, tuple[str, str]] = {}
        state = load_state(
            session,
            self._box,
            now=now,
            certs=self._certs,
            records=self._records,
            cert_keys=keys,
            every_project=self._incremental_on,
        )
        zones, zone_refs = self._zones(state.dns)
        if not self._incremental_on:
            return self._serialised(current, state, zones, zone_refs)
        # Each certificate as a full build serves it: that of its first (project, domain).
        firsts: dict[str, CertState] = {}
        for project in sorted(state.domains):
            for domain in sorted(state.domains[project]):
                c = state.certs.get(domain)
                if c is not None:
                    firsts.setdefault(c.id, c)
        specs = [cert_spec(c) for c in firsts.values()]
        objs = self._cert_refs(zip(firsts.values(), specs, strict=True))
        known = {spec.id: (spec, o) for spec, o in zip(specs, objs, strict=True)}
        parts = _parts_of(state, env, zones, zone_refs, keys, known)
        emitted = parts.emit(state.acme_http, state.ticket_keys, state.deployments, state.functions)
        self._parts, self._routes = parts, routes
        self._horizon = next_expiry(session, now)
        return self._view_of(current, emitted)

    def _serialised(
        self,
        current: int,
        state: DesiredState,
        zones: tuple[ZoneSpec, ...],
        zone_refs: dict[str, StoredObject],
    ) -> RevisionView:
        """The revision from ``served`` and serialised whole (without parts): the reference
        the parts are checked against."""
        base = served(state, zones=zones)
        by_id = {c.id: c for c in state.certs.values()}
        by_id.update((c.id, c) for c in state.client_certs.values())
        cert_refs = self._cert_refs((by_id[c.id], c) for c in base.certs)
        zone_map = {name: o.hash for name, o in zone_refs.items()}
        http_part = b"".join(
            [
                b'"sites":',
                _SITES.dump_json(base.sites),
                b',"pools":',
                _POOLS.dump_json(base.pools),
                b',"certs":',
                json.dumps([o.hash for o in cert_refs]).encode(),
                b',"verifications":',
                _VERIFICATIONS.dump_json(base.verifications),
                b',"ticket_keys":',
                _TICKETS.dump_json(base.ticket_keys),
            ]
        )
        shared = b"".join(
            [
                http_part,
                b',"zones":',
                json.dumps(zone_map, separators=(",", ":")).encode(),
                b',"acme_http":',
                _ACME.dump_json(base.acme_http),
                b',"geo":',
                base.geo.model_dump_json().encode(),
            ]
        )
        objects = {o.hash: o.body for o in cert_refs}
        objects.update((o.hash, o.body) for o in zone_refs.values())
        emitted = Emitted(base, zone_refs, cert_refs, shared, http_part, objects)
        return self._view_of(current, emitted)

    def _view_of(self, current: int, emitted: Emitted) -> RevisionView:
        self.builds += 1
        # ``http_part`` begins ``shared``: hashed once, its state copied.
        shared, cut = emitted.shared, len(emitted.http_part)
        h = hashlib.sha256(memoryview(shared)[:cut])
        http_digest = h.digest()
        h.update(memoryview(shared)[cut:])
        return RevisionView(
            revision=current,
            base=emitted.base,
            zones=emitted.zones,
            certs=emitted.certs,
            shared=shared,
            shared_digest=h.digest(),
            http_digest=http_digest,
            objects=emitted.objects,
        )

    def view(self, session: Session, revision: int) -> RevisionView:
        """The shared part at ``revision`` or newer (built when the cache is older)."""
        with self._lock:
            if self._view is not None and self._view.revision >= revision:
                return self._view
            started = time.monotonic()
            with collector.paused():
                try:
                    view, how = self._build(session)
                except BaseException:
                    self._parts = None  # maybe half applied: the next build is a full one
                    raise
            ms = (time.monotonic() - started) * 1000
            self.last_build = (how, ms)
            if how == "incremental":
                self.incremental_builds += 1
            log.info(
                "snapshot of revision %d built in %.0f ms (%d zones, %d certificates; %s)",
                view.revision,
                ms,
                len(view.zones),
                len(view.certs),
                how if how == "incremental" else f"full: {how}",
            )
            self._view, self._nodes, self._deltas = view, {}, {}
            self._views.append(view)
            self._recent.append(view.objects)
            return view

    def drop_parts(self) -> None:
        """Build the next revision in full (benches: what a fallback costs)."""
        with self._lock:
            self._parts = None

    def clear(self) -> None:
        """Forget every revision built and all that was read to build them: the next one is
        built in full from the database, and no delta is made from an older one. For when the
        revision numbers may have been used twice (``services.realign``: a failover lost the
        last transactions, or the database was restored): a view, a zone's records (cached by
        the zone's revision) or a certificate of the lost history must not be served again.
        The objects of recent revisions stay fetchable: they are named by their content."""
        with self._lock:
            self._forget()

    def _forget(self) -> None:
        self._view, self._nodes, self._deltas = None, {}, {}
        self._views.clear()
        self._parts, self._routes, self._horizon = None, {}, FOREVER
        self._changes = set()
        self._certs, self._records = {}, {}
        self._zone_objects, self._cert_objects = {}, {}

    def base(self, session: Session, revision: int) -> tuple[int, Served]:
        """The served state at ``revision`` or newer."""
        view = self.view(session, revision)
        return view.revision, view.base

    def for_node(
        self, session: Session, node: NodeSpec, revision: int, *, functions: bool = False
    ) -> NodeSnapshot:
        """``node``'s snapshot of ``revision`` or newer; ``functions``: whether the node runs
        edge functions (``snapshot.functions.runs_functions`` of its protocol version and
        capability), else it gets none."""
        view = self.view(session, revision)
        with self._lock:
            hit = self._nodes.get((node, functions))
            if hit is not None and hit.view is view:
                return hit
        content, http, node_json, tail = _node_part(view, node, functions)
        manifest = b"".join(
            [
                b'{"revision":',
                str(view.revision).encode(),
                b',"hash":"',
                content.encode(),
                b'","http_hash":"',
                http.encode(),
                b'","node":',
                node_json,
                b",",
                view.shared,
                tail,
                b"}",
            ]
        )
        snap = NodeSnapshot(view.revision, content, http, manifest, view, node, tail, functions)
        with self._lock:
            if self._view is view:
                if len(self._nodes) > 10_000:
                    self._nodes.clear()
                self._nodes[(node, functions)] = snap
        return snap

    def delta(self, snap: NodeSnapshot, after: int, have: str) -> bytes | None:
        """``snap``'s manifest as a ``ManifestDelta`` (JSON) from the node's manifest of
        revision ``after``, whose hash the node says is ``have``; None when that is not one
        of the last revisions built, not what the node was sent, or the changes are not much
        smaller than the manifest (then it is sent whole)."""
        with self._lock:
            base = next((v for v in self._views if v.revision == after), None)
        if (
            base is None
            or base is snap.view
            or _node_part(base, snap.node, snap.functions)[0] != have
        ):
            return None
        with self._delta_lock:  # the nodes that poll at once: one computes, the others reuse
            with self._lock:
                known = after in self._deltas and self._view is snap.view
                shared = self._deltas.get(after)
            if not known:
                with collector.paused():  # tens of thousands of short-lived objects
                    shared = _shared_delta(base, snap.view, self.delta_ratio)
                with self._lock:
                    if self._view is snap.view:
                        self._deltas[after] = shared
        if shared is None:
            return None
        return b"".join(
            [
                b'{"base":',
                str(after).encode(),
                b',"base_hash":',
                json.dumps(have).encode(),
                b',"revision":',
                str(snap.revision).encode(),
                b',"hash":"',
                snap.hash.encode(),
                b'","http_hash":"',
                snap.http_hash.encode(),
                b'","node":',
                snap.node.model_dump_json().encode(),
                b",",
                shared,
                snap.tail,
                b"}",
            ]
        )

    # ------------------------------------------------------------------ objects

    def objects(self, hashes: Iterable[str]) -> list[tuple[str, bytes]]:
        """The bodies of ``hashes`` (objects of the last few revisions built);
        ``UnknownObjects`` names those that are not."""
        with self._lock:
            recent = list(self._recent)
        out: list[tuple[str, bytes]] = []
        missing: list[str] = []
        for h in dict.fromkeys(hashes):
            body = next((table[h] for table in reversed(recent) if h in table), None)
            if body is None:
                missing.append(h)
            else:
                out.append((h, body))
        if missing:
            raise UnknownObjects(missing)
        return out


def objects_body(found: Mapping[str, bytes] | list[tuple[str, bytes]]) -> bytes:
    """``ObjectsAnswer`` JSON, the stored bodies spliced in as they are."""
    items = found.items() if isinstance(found, Mapping) else found
    parts = [b'{"objects":{']
    for i, (h, body) in enumerate(items):
        if i:
            parts.append(b",")
        parts += [b'"', h.encode(), b'":', body]
    parts.append(b"}}")
    return b"".join(parts)
