"""The snapshot of the newest revision, built once and shared by every node's long-poll.

Every node's snapshot differs only by its ``node`` (and the bundles chosen for it), so one
build of the served state serves them all. A new revision rebuilds only what changed:

- each zone's ``ZoneSpec`` is cached by what it is made of (the zone's state, which carries its
  revision, and the edge nodes and regions it reads; not liveness, which no zone reads), each
  certificate's ``CertSpec`` by the certificate (its key decrypted once, not once per revision);
- each object is serialised and hashed once (``object_hash``) and served by hash to the nodes
  that lack it (``objects``);
- the part of the manifest every node shares (sites, pools, references to zones and
  certificates, ...) is serialised and hashed once per revision; per node only its node,
  bundles and prefetch list are.

The full ``EdgeConfig`` of a node (the long-poll without ``refs``, kept for older agents) is
assembled and serialised on demand only. The control plane makes one ``SnapshotCache`` for its
database (``create_app``) and passes it to whoever serves snapshots or compares a node's hash
with the current one.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from pydantic import TypeAdapter
from sqlalchemy.orm import Session

from edgeplane.protocol.config import (
    AcmeHttpSpec,
    BundleSpec,
    CertSpec,
    EdgeConfig,
    NodeSpec,
    PoolSpec,
    SiteSpec,
    TicketKeySpec,
    VerificationSpec,
    ZoneSpec,
    canonical_body,
    object_hash,
)
from edgeplane.secrets import SecretBox
from edgeplane.snapshot.build import (
    CertState,
    Served,
    assemble,
    node_bundles,
    node_prefetch,
    served,
)
from edgeplane.snapshot.load import CertCache, RecordsCache, load_state
from edgeplane.snapshot.zones import DnsState, ZoneState, build_zone
from edgeplane.store import revision as revisions

log = logging.getLogger(__name__)

KEEP_REVISIONS = 8  # objects of this many revisions stay fetchable (a node a little behind)

_SITES = TypeAdapter(tuple[SiteSpec, ...])
_POOLS = TypeAdapter(tuple[PoolSpec, ...])
_VERIFICATIONS = TypeAdapter(tuple[VerificationSpec, ...])
_ACME = TypeAdapter(tuple[AcmeHttpSpec, ...])
_BUNDLES = TypeAdapter(tuple[BundleSpec, ...])
_TICKETS = TypeAdapter(tuple[TicketKeySpec, ...])


@dataclass(frozen=True)
class StoredObject:
    hash: str
    body: bytes


def _stored(spec: ZoneSpec | CertSpec) -> StoredObject:
    body = canonical_body(spec.model_dump(mode="json"))
    return StoredObject(object_hash(body), body)


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


@dataclass(frozen=True)
class NodeSnapshot:
    """One node's snapshot of a revision: its hashes and its manifest body, ready to send."""

    revision: int
    hash: str
    http_hash: str
    manifest: bytes  # EdgeManifest JSON
    view: RevisionView
    node: NodeSpec

    @property
    def config(self) -> EdgeConfig:
        """The full snapshot (zones and certificates inline): assembled on demand."""
        config = assemble(self.view.base, self.node, self.revision)
        return config.with_digests(self.hash, self.http_hash)

    @property
    def body(self) -> bytes:
        """``config`` as JSON (the long-poll without ``refs``)."""
        return self.config.model_dump_json().encode()


class UnknownObjects(Exception):
    def __init__(self, missing: list[str]) -> None:
        super().__init__(", ".join(missing))
        self.missing = missing


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while a revision is built: the build makes hundreds of
    thousands of short-lived objects beside the ~500,000 the caches hold at 10,000 domains,
    and the collections they trigger (walking the cached objects) doubled its time. Objects
    without cycles are freed as before; the collector runs again afterwards."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _zone_env(dns: DnsState) -> tuple[str, str]:
    """What a zone's spec reads besides its own state: the nameservers (every zone) and, for
    zones with proxied records, the regions' coordinates as well. Not which nodes are live:
    no zone depends on it (``EdgeConfig.geo`` does). As text: a string hashes once, where the
    tuples were hashed again for each of 10,000 zones (about a third of a revision's build)."""
    static = tuple((n.id, n.name, n.region, n.address) for n in dns.nodes)
    full = (static, tuple(sorted(dns.regions.items())))
    return repr(static), repr(full)


class SnapshotCache:
    """The snapshot of the newest revision seen, built once, and each node's view of it."""

    def __init__(self, box: SecretBox) -> None:
        self._box = box
        self._lock = threading.Lock()
        self._view: RevisionView | None = None
        self._nodes: dict[NodeSpec, NodeSnapshot] = {}
        self._certs: CertCache = {}
        self._records: RecordsCache = {}
        self._zone_objects: dict[tuple[object, ...], tuple[ZoneSpec, StoredObject]] = {}
        self._cert_objects: dict[CertState, StoredObject] = {}
        self._recent: deque[dict[str, bytes]] = deque(maxlen=KEEP_REVISIONS)
        self.builds = 0  # revisions built (tests and figures)
        self.zones_built = 0  # zone specs built, over all revisions

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
                hit = (spec, _stored(spec))
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
                hit = _stored(spec)
            fresh[state] = hit
            out.append(hit)
        self._cert_objects = fresh
        return tuple(out)

    def _build(self, session: Session) -> RevisionView:
        # The revision first: the rows read after it are at least as new as it.
        current = revisions.current(session)
        state = load_state(session, self._box, certs=self._certs, records=self._records)
        zones, zone_refs = self._zones(state.dns)
        base = served(state, zones=zones)
        by_id = {c.id: c for c in state.certs.values()}
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
        self.builds += 1
        return RevisionView(
            revision=current,
            base=base,
            zones=zone_refs,
            certs=cert_refs,
            shared=shared,
            shared_digest=hashlib.sha256(shared).digest(),
            http_digest=hashlib.sha256(http_part).digest(),
            objects=objects,
        )

    def view(self, session: Session, revision: int) -> RevisionView:
        """The shared part at ``revision`` or newer (built when the cache is older)."""
        with self._lock:
            if self._view is not None and self._view.revision >= revision:
                return self._view
            started = time.monotonic()
            with _collector_paused():
                view = self._build(session)
            log.info(
                "snapshot of revision %d built in %.0f ms (%d zones, %d certificates)",
                view.revision,
                (time.monotonic() - started) * 1000,
                len(view.zones),
                len(view.certs),
            )
            self._view, self._nodes = view, {}
            self._recent.append(view.objects)
            return view

    def base(self, session: Session, revision: int) -> tuple[int, Served]:
        """The served state at ``revision`` or newer."""
        view = self.view(session, revision)
        return view.revision, view.base

    def for_node(self, session: Session, node: NodeSpec, revision: int) -> NodeSnapshot:
        view = self.view(session, revision)
        with self._lock:
            hit = self._nodes.get(node)
            if hit is not None and hit.view is view:
                return hit
        bundles = node_bundles(view.base.deployments, node)
        prefetch = node_prefetch(view.base.deployments, node)
        node_json = node.model_dump_json().encode()
        bundles_json = _BUNDLES.dump_json(bundles)
        prefetch_json = json.dumps(list(prefetch)).encode()
        content = _digest(view.shared_digest, node_json, bundles_json, prefetch_json)
        http = _digest(view.http_digest, node_json, bundles_json)
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
                b',"bundles":',
                bundles_json,
                b',"prefetch":',
                prefetch_json,
                b"}",
            ]
        )
        snap = NodeSnapshot(view.revision, content, http, manifest, view, node)
        with self._lock:
            if self._view is view:
                if len(self._nodes) > 10_000:
                    self._nodes.clear()
                self._nodes[node] = snap
        return snap

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
