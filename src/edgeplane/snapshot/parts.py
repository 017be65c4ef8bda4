"""The shared part of a snapshot kept in parts, so that a revision rebuilds only what changed.

A full build (``snapshot.build.served``) walks every domain. ``Parts`` holds the same result
cut along domains and projects, each piece serialised once:

- per domain (``DomainPart``: its zone, whether it is served, its certificate): its zone's
  object and its entry of the manifest's zone map, its verification entry, its LUA records'
  share of ``geo``;
- per project: its site and pool, serialised;
- per certificate: its object, and which domains use it.

``apply`` replaces the parts of the domains a revision changed (``snapshot.changes``) and
rebuilds the sites and certificates they belong to; ``emit`` joins the serialised pieces into
the manifest's shared fields and the ``Served`` value, equal byte for byte to what a full
build gives for the same state (``tests/api/test_snapshot_parts.py`` checks it over a
sequence of changes). Everything the parts do not hold per domain (edge nodes and their
liveness, regions, deployments' routing, CDN configs, load balancers, servers, DR configs and
their states) is fixed for
the life of a ``Parts``: when it changes, the cache builds the revision in full and makes a
new one.
"""

from __future__ import annotations

import bisect
import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from pydantic import TypeAdapter

from edgeplane.protocol.config import (
    AcmeHttpSpec,
    CertSpec,
    GeoDnsSpec,
    PoolSpec,
    SiteSpec,
    TicketKeySpec,
    VerificationSpec,
    ZoneSpec,
    canonical_body,
    object_hash,
)
from edgeplane.snapshot.build import (
    CertState,
    DeploymentState,
    DesiredState,
    Served,
    cert_spec,
    client_certs,
    served_functions,
    site_pool,
    site_spec,
    verification_spec,
)
from edgeplane.snapshot.functions import FunctionState
from edgeplane.snapshot.zones import DnsState, GeoWant, ZoneState, build_geo, geo_wants

_TICKETS = TypeAdapter(tuple[TicketKeySpec, ...])
_ACME = TypeAdapter(tuple[AcmeHttpSpec, ...])
_VERIFICATION = TypeAdapter(VerificationSpec)


@dataclass(frozen=True)
class StoredObject:
    """An object (a zone, a certificate) as nodes fetch it: its canonical body and hash."""

    hash: str
    body: bytes


def stored(spec: ZoneSpec | CertSpec) -> StoredObject:
    body = canonical_body(spec.model_dump(mode="json"))
    return StoredObject(object_hash(body), body)


@dataclass(frozen=True)
class DomainPart:
    """One domain's share of the served state, as read from the database."""

    name: str
    project: str
    active: bool  # verified: served by the HTTP edge
    zone: ZoneState
    cert: CertState | None = None  # the newest valid one of its own project (active only)
    cert_key: tuple[str, str] | None = None  # (project, certificate id) of ``cert``


@dataclass(frozen=True)
class Emitted:
    """The shared part of a revision: the value, its objects, and its manifest fields."""

    base: Served
    zones: dict[str, StoredObject]  # zone name (with its dot) -> its object
    certs: tuple[StoredObject, ...]  # sorted by certificate id
    shared: bytes  # the manifest's shared fields, a JSON object's inside
    http_part: bytes  # the fields nginx serves (a prefix of ``shared``)
    objects: dict[str, bytes]  # hash -> body of every zone and certificate


ZoneObjects = Callable[[ZoneState], tuple[ZoneSpec, StoredObject]]


@dataclass
class _Site:
    spec: SiteSpec
    json: bytes
    pool: PoolSpec | None
    pool_json: bytes


_PLAIN = re.compile(r"^[A-Za-z0-9._*+/=:-]*$")  # JSON strings as they are, nothing escaped


def _json_str(text: str) -> bytes:
    """``json.dumps(text)``, without its cost for the names and hashes that need no escape."""
    return f'"{text}"'.encode() if _PLAIN.match(text) else json.dumps(text).encode()


def _verification_json(spec: VerificationSpec) -> bytes:
    """``spec`` as JSON, its two plain strings formatted directly."""
    if _PLAIN.match(spec.domain) and _PLAIN.match(spec.token):
        return f'{{"domain":"{spec.domain}","token":"{spec.token}"}}'.encode()
    return _VERIFICATION.dump_json(spec)


def _insort_all(ordered: list[str], names: Iterable[str]) -> None:
    for n in names:
        bisect.insort(ordered, n)


def _remove_all(ordered: list[str], names: Iterable[str]) -> None:
    for n in names:
        i = bisect.bisect_left(ordered, n)
        if i < len(ordered) and ordered[i] == n:
            del ordered[i]


@dataclass
class Parts:
    """The served state in parts, for one set of shared inputs (``shared``: its nodes,
    regions, CDN configs, load balancers and servers; its ``domains`` and ``certs`` unused).

    Lists of names are kept sorted and the pieces in dicts by name, so that ``emit`` joins
    them in C (``map`` over the sorted names) rather than in a Python loop."""

    shared: DesiredState
    env: DnsState  # the edge nodes, liveness and regions every zone reads (no zones)
    domains: dict[str, DomainPart] = field(default_factory=dict)
    zone_names: list[str] = field(default_factory=list)  # every domain's zone, sorted
    zone_specs: dict[str, ZoneSpec] = field(default_factory=dict)
    zone_objects: dict[str, StoredObject] = field(default_factory=dict)
    zone_json: dict[str, bytes] = field(default_factory=dict)  # '"name.":"hash"'
    zone_refs: dict[str, StoredObject] = field(default_factory=dict)  # "name." -> object
    verified_names: list[str] = field(default_factory=list)  # zones with a token, sorted
    verifications: dict[str, VerificationSpec] = field(default_factory=dict)
    verification_json: dict[str, bytes] = field(default_factory=dict)
    geo_wants: Counter[GeoWant] = field(default_factory=Counter)
    geo_keys: frozenset[GeoWant] = frozenset()
    geo: GeoDnsSpec = field(default_factory=GeoDnsSpec)
    geo_json: bytes = b""
    site_domains: dict[str, list[str]] = field(default_factory=dict)  # served, sorted
    projects: list[str] = field(default_factory=list)  # with a site, sorted
    sites: dict[str, _Site] = field(default_factory=dict)
    served_certs: dict[str, CertState] = field(default_factory=dict)  # domain -> certificate
    cert_users: dict[str, set[tuple[str, str]]] = field(default_factory=dict)  # (project, d)
    cert_ids: list[str] = field(default_factory=list)  # sorted
    cert_specs: dict[str, CertSpec] = field(default_factory=dict)
    cert_objects: dict[str, StoredObject] = field(default_factory=dict)
    cert_json: dict[str, bytes] = field(default_factory=dict)  # '"hash"'
    # the client certificates of private origins (fixed with ``shared``), made once each
    client_objects: dict[str, tuple[CertSpec, StoredObject]] = field(default_factory=dict)
    objects: dict[str, bytes] = field(default_factory=dict)  # hash -> body, zones and certs
    applied: int = 0  # domain parts applied since made (figures)

    # ------------------------------------------------------------------ changing

    def fill(
        self,
        parts: list[DomainPart],
        zone_objects: ZoneObjects,
        known_certs: Mapping[str, tuple[CertSpec, StoredObject]],
    ) -> None:
        """Make empty parts hold ``parts`` (sorted by name): what ``apply`` would do, in bulk
        (a full build's 10,000 domains: comprehensions, not a call per domain)."""
        if self.domains:
            raise ValueError("fill() makes new parts; apply() changes them")
        names = [p.name for p in parts]
        self.domains = dict(zip(names, parts, strict=True))
        self.zone_names = names
        zones = [zone_objects(p.zone) for p in parts]
        self.zone_specs = {n: spec for n, (spec, _) in zip(names, zones, strict=True)}
        self.zone_objects = {n: obj for n, (_, obj) in zip(names, zones, strict=True)}
        self.zone_refs = {spec.name: obj for spec, obj in zones}
        self.objects = {obj.hash: obj.body for _, obj in zones}
        self.zone_json = {
            n: _json_str(spec.name) + b":" + _json_str(obj.hash)
            for n, (spec, obj) in zip(names, zones, strict=True)
        }
        tokens = [(p.name, p.zone.token) for p in parts if p.zone.token]
        self.verified_names = [n for n, _ in tokens]
        self.verifications = {n: verification_spec(n, t) for n, t in tokens}
        self.verification_json = {n: _verification_json(v) for n, v in self.verifications.items()}
        self.geo_wants = Counter(
            w for p in parts if any(r.proxied for r in p.zone.records) for w in geo_wants(p.zone)
        )
        for p in parts:
            if p.active:
                self.site_domains.setdefault(p.project, []).append(p.name)
                if p.cert is not None:
                    self.served_certs[p.name] = p.cert
                    self.cert_users.setdefault(p.cert.id, set()).add((p.project, p.name))
        self.cert_ids = sorted(self.cert_users)
        for cert_id, (spec, obj) in known_certs.items():
            if cert_id in self.cert_users:
                self.cert_specs[cert_id], self.cert_objects[cert_id] = spec, obj
        for cert_id in self.cert_ids:
            self._cert(cert_id)
        self.projects = sorted(self.site_domains)
        for project in self.projects:
            self._site(project)
        self._geo()
        self.applied += len(parts)

    def apply(
        self,
        changed: Mapping[str, DomainPart | None],
        zone_objects: ZoneObjects,
        known_certs: Mapping[str, tuple[CertSpec, StoredObject]] | None = None,
    ) -> None:
        """Replace the parts of ``changed`` domains (None: gone); rebuild what they touch.
        ``zone_objects`` makes a zone's object; ``known_certs``: certificate objects already
        made (by id), reused when their spec is the one wanted."""
        sites: set[str] = set()
        certs: set[str] = set()
        gone: list[str] = []
        new: list[str] = []
        bulk = len(changed) > 1000  # sorted once at the end, not kept sorted on the way
        for name, part in changed.items():
            old = self.domains.pop(name, None)
            if old is not None:
                self._drop(old, sites, certs)
                gone.append(name)
            if part is not None:
                self.domains[name] = part
                self._add(part, sites, certs, zone_objects, bulk)
                new.append(name)
            self.applied += 1
        if bulk:
            self.zone_names = sorted(self.domains)
            self.verified_names = sorted(self.verifications)
            for project in sites:
                if project in self.site_domains:
                    self.site_domains[project].sort()
            self.cert_ids = sorted(set(self.cert_ids) | certs)
        else:
            _remove_all(self.zone_names, gone)
            _insort_all(self.zone_names, new)
            _remove_all(self.verified_names, gone)
            _insort_all(self.verified_names, (n for n in new if n in self.verifications))
        for project in sites:
            self._site(project)
        if known_certs:
            for cert_id, (spec, obj) in known_certs.items():
                self.cert_specs[cert_id], self.cert_objects[cert_id] = spec, obj
        for cert_id in certs:
            self._cert(cert_id)
        self._geo()

    def relive(self, env: DnsState) -> None:
        """The same nodes and regions, another live set: only the geo answers change (no
        zone reads liveness: ``snapshot.zones``)."""
        self.env = env
        self.geo_json = b""
        self._geo()

    def _geo(self) -> None:
        keys = frozenset(w for w, n in self.geo_wants.items() if n > 0)
        if keys != self.geo_keys or not self.geo_json:
            self.geo_keys = keys
            self.geo = build_geo(self.env, set(keys))
            self.geo_json = self.geo.model_dump_json().encode()

    def _drop(self, part: DomainPart, sites: set[str], certs: set[str]) -> None:
        name = part.name
        self.zone_specs.pop(name, None)
        obj = self.zone_objects.pop(name, None)
        if obj is not None:
            self.objects.pop(obj.hash, None)
        self.zone_refs.pop(f"{name}.", None)
        self.zone_json.pop(name, None)
        self.verifications.pop(name, None)
        self.verification_json.pop(name, None)
        if any(r.proxied for r in part.zone.records):
            self.geo_wants.subtract(geo_wants(part.zone))
        if part.active:
            sites.add(part.project)
            served = self.site_domains.get(part.project)
            if served is not None:
                _remove_all(served, [name])
        cert = self.served_certs.pop(name, None)
        if cert is not None:
            users = self.cert_users.get(cert.id)
            if users is not None:
                users.discard((part.project, name))
            certs.add(cert.id)

    def _add(
        self,
        part: DomainPart,
        sites: set[str],
        certs: set[str],
        zone_objects: ZoneObjects,
        bulk: bool,
    ) -> None:
        name = part.name
        spec, obj = zone_objects(part.zone)
        self.zone_specs[name], self.zone_objects[name] = spec, obj
        self.zone_refs[spec.name] = obj
        self.objects[obj.hash] = obj.body
        self.zone_json[name] = _json_str(spec.name) + b":" + _json_str(obj.hash)
        if part.zone.token:
            v = verification_spec(name, part.zone.token)
            self.verifications[name] = v
            self.verification_json[name] = _verification_json(v)
        if any(r.proxied for r in part.zone.records):
            self.geo_wants.update(geo_wants(part.zone))
        if part.active:
            sites.add(part.project)
            served = self.site_domains.setdefault(part.project, [])
            if bulk:
                served.append(name)
            else:
                bisect.insort(served, name)
            if part.cert is not None:
                self.served_certs[name] = part.cert
                self.cert_users.setdefault(part.cert.id, set()).add((part.project, name))
                certs.add(part.cert.id)

    def _site(self, project: str) -> None:
        domains = self.site_domains.get(project)
        i = bisect.bisect_left(self.projects, project)
        listed = i < len(self.projects) and self.projects[i] == project
        if not domains:
            self.site_domains.pop(project, None)
            self.sites.pop(project, None)
            if listed:
                del self.projects[i]
            return
        if not listed:
            self.projects.insert(i, project)
        state = DesiredState(
            cdn=self.shared.cdn,
            load_balancers=self.shared.load_balancers,
            servers=self.shared.servers,
            certs=self.served_certs,
            placement=self.shared.placement,
            client_certs=self.shared.client_certs,
        )
        pool = site_pool(state, project)
        spec = site_spec(state, project, tuple(domains), pool.id if pool else None)
        self.sites[project] = _Site(
            spec,
            spec.model_dump_json().encode(),
            pool,
            pool.model_dump_json().encode() if pool is not None else b"",
        )

    def _cert(self, cert_id: str) -> None:
        users = self.cert_users.get(cert_id)
        i = bisect.bisect_left(self.cert_ids, cert_id)
        listed = i < len(self.cert_ids) and self.cert_ids[i] == cert_id
        held = self.cert_objects.get(cert_id)
        if not users:
            self.cert_users.pop(cert_id, None)
            self.cert_specs.pop(cert_id, None)
            self.cert_objects.pop(cert_id, None)
            self.cert_json.pop(cert_id, None)
            if held is not None:
                self.objects.pop(held.hash, None)
            if listed:
                del self.cert_ids[i]
            return
        if not listed:
            self.cert_ids.insert(i, cert_id)
        # As a full build: the certificate of the first (project, domain) that uses it.
        spec = cert_spec(self.served_certs[min(users)[1]])
        had = self.cert_specs.get(cert_id)
        if held is None or had is None or (had is not spec and had != spec):
            if held is not None:
                self.objects.pop(held.hash, None)
            held = stored(spec)
        self.cert_specs[cert_id], self.cert_objects[cert_id] = spec, held
        self.cert_json[cert_id] = b'"' + held.hash.encode() + b'"'
        self.objects[held.hash] = held.body

    # ------------------------------------------------------------------ output

    def emit(
        self,
        acme_http: tuple[tuple[str, str], ...],
        ticket_keys: tuple[TicketKeySpec, ...],
        deployments: tuple[DeploymentState, ...],
        functions: tuple[FunctionState, ...] = (),
    ) -> Emitted:
        """The shared part of a revision, joined from the serialised pieces."""
        sites = [self.sites[p] for p in self.projects]
        pools: dict[str, _Site] = {}
        for pool_id, s in sorted((s.pool.id, s) for s in sites if s.pool is not None):
            pools.setdefault(pool_id, s)
        acme = tuple(AcmeHttpSpec(token=t, key_authorization=k) for t, k in sorted(set(acme_http)))
        cert_ids, cert_json, cert_specs, cert_objects, objects = self._with_clients(
            [s.pool for s in pools.values() if s.pool is not None]
        )
        http_part = b"".join(
            [
                b'"sites":[',
                b",".join([s.json for s in sites]),
                b'],"pools":[',
                b",".join([s.pool_json for s in pools.values()]),
                b'],"certs":[',
                b", ".join(map(cert_json.__getitem__, cert_ids)),
                b'],"verifications":[',
                b",".join(map(self.verification_json.__getitem__, self.verified_names)),
                b'],"ticket_keys":',
                _TICKETS.dump_json(ticket_keys),
            ]
        )
        shared = b"".join(
            [
                http_part,
                b',"zones":{',
                b",".join(map(self.zone_json.__getitem__, self.zone_names)),
                b'},"acme_http":',
                _ACME.dump_json(acme),
                b',"geo":',
                self.geo_json,
            ]
        )
        site_ids = set(self.projects)
        zone_specs = tuple(map(self.zone_specs.__getitem__, self.zone_names))
        base = Served(
            sites=tuple(s.spec for s in sites),
            pools=tuple(s.pool for s in pools.values() if s.pool is not None),
            certs=tuple(map(cert_specs.__getitem__, cert_ids)),
            zones=zone_specs,
            geo=self.geo,
            verifications=tuple(map(self.verifications.__getitem__, self.verified_names)),
            acme_http=acme,
            deployments=tuple(
                sorted(
                    (d for d in deployments if d.project in site_ids),
                    key=lambda d: (d.project, d.id),
                )
            ),
            ticket_keys=ticket_keys,
            functions=served_functions(functions, site_ids),
        )
        return Emitted(
            base=base,
            zones=dict(self.zone_refs),
            certs=tuple(map(cert_objects.__getitem__, cert_ids)),
            shared=shared,
            http_part=http_part,
            objects=objects,
        )

    def _with_clients(
        self, pools: list[PoolSpec]
    ) -> tuple[
        list[str],
        Mapping[str, bytes],
        Mapping[str, CertSpec],
        Mapping[str, StoredObject],
        dict[str, bytes],
    ]:
        """The certificates to emit: the domains', and the client certificates the pools
        present to their origins (``snapshot.build.client_certs``), as a full build has them."""
        clients = client_certs(self.shared, pools)
        if not clients:
            return (
                self.cert_ids,
                self.cert_json,
                self.cert_specs,
                self.cert_objects,
                dict(self.objects),
            )
        specs, objs, json_ = dict(self.cert_specs), dict(self.cert_objects), dict(self.cert_json)
        objects = dict(self.objects)
        for c in clients:
            if c.id in specs:
                continue
            hit = self.client_objects.get(c.id)
            if hit is None:
                spec = cert_spec(c)
                hit = self.client_objects[c.id] = (spec, stored(spec))
            specs[c.id], objs[c.id] = hit
            json_[c.id] = b'"' + hit[1].hash.encode() + b'"'
            objects[hit[1].hash] = hit[1].body
        ids = sorted(set(self.cert_ids) | {c.id for c in clients})
        return ids, json_, specs, objs, objects
