"""The nginx apply of one change among N sites: a synthetic snapshot driven through ``NginxEngine``.

Used by ``bench/edge.py --stages apply``. The snapshot is what ``services.domains.add`` makes of
N domains, one project each: a site per domain (HTTPS forced, as for every certified domain),
the domain's own certificate (one throwaway CA, one key: the cost measured is nginx's and the
engine's, not OpenSSL's), the node's session ticket keys; every ``RULED_EVERY``-th site has an
origin and cache rules (a CDN configuration). The changes measured, each an apply of its own:
a domain added (a new site and its certificate), the same removed, and a certificate renewed
(same key and names, a new certificate: no reload, the name's link moves).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from edgeplane.node.nginx.engine import ApplyResult, NginxEngine
from edgeplane.node.nginx.local import LocalHealth, NodeLocal
from edgeplane.node.nginx.memory import tree_pss_mib
from edgeplane.protocol.config import (
    BackendSpec,
    CacheRuleSpec,
    CertSpec,
    EdgeConfig,
    NodeSpec,
    PoolSpec,
    SiteSpec,
    TicketKeySpec,
)

PARENT = "apply.test"
RULED_EVERY = 100  # one site in a hundred has an origin and cache rules
NODE = NodeSpec(id="apply-1", name="apply-1", region="local")
STEPS = ("render", "files", "stage", "check", "reload", "forget")
CHANGES = ("add", "remove", "renew")
DISCARD = 9  # the origin port of the sites with one: nothing is requested in this bench
SPACING = 0.15  # seconds between two applies


class Issuer:
    """Leaf certificates of one throwaway CA, all for one key."""

    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        self.ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "apply bench CA")])
        self.ca = (
            x509.CertificateBuilder().subject_name(self.ca_name).issuer_name(self.ca_name)
            .public_key(self.ca_key.public_key()).serial_number(1)
            .not_valid_before(self.now - dt.timedelta(days=1))
            .not_valid_after(self.now + dt.timedelta(days=90))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.ca_key, hashes.SHA256())
        )  # fmt: skip
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.key_pem = self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        self.serial = 1000

    @property
    def ca_pem(self) -> bytes:
        return self.ca.public_bytes(serialization.Encoding.PEM)

    def issue(self, name: str, days: int = 60) -> CertSpec:
        self.serial += 1
        not_after = self.now + dt.timedelta(days=days, seconds=self.serial)
        leaf = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self.ca_name).public_key(self.key.public_key())
            .serial_number(self.serial)
            .not_valid_before(self.now - dt.timedelta(days=1)).not_valid_after(not_after)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), False)
            .sign(self.ca_key, hashes.SHA256())
        )  # fmt: skip
        pem = leaf.public_bytes(serialization.Encoding.PEM).decode()
        return CertSpec(
            id=f"cert-{hashlib.sha256(pem.encode()).hexdigest()[:12]}",
            names=(name,),
            cert_pem=pem,
            key_pem=self.key_pem,
            not_after=not_after.isoformat(),
        )


def domain(i: int) -> str:
    return f"d{i}.{PARENT}"


def site_id(i: int) -> str:
    return f"s{i:06d}"


def pool(i: int, origin_port: int) -> PoolSpec:
    return PoolSpec(
        id=f"origin.{site_id(i)}",
        algorithm="round_robin",
        backends=(BackendSpec(key=f"127.0.0.1:{origin_port}", host="127.0.0.1", port=origin_port),),
    )


def rules(i: int, variant: int = 0) -> tuple[CacheRuleSpec, ...]:
    return (
        CacheRuleSpec(id=f"r{i}a", pattern="/static/*", ttl=600 + variant),
        CacheRuleSpec(id=f"r{i}b", pattern="*.css", ttl=60, origin_cache_control="honour"),
        CacheRuleSpec(id=f"r{i}c", pattern="/api/*", ttl=0, bypass=True),
    )


def site(i: int, origin_port: int, variant: int = 0) -> tuple[SiteSpec, PoolSpec | None]:
    if i % RULED_EVERY == 0:
        p = pool(i, origin_port)
        spec = SiteSpec(
            id=site_id(i), domains=(domain(i),), pool=p.id, cache_rules=rules(i, variant),
            force_https=True,
        )  # fmt: skip
        return spec, p
    return SiteSpec(id=site_id(i), domains=(domain(i),), pool=None, force_https=True), None


def ticket_keys() -> tuple[TicketKeySpec, ...]:
    out = []
    for n in range(3):
        raw = hashlib.sha512(f"apply bench {n}".encode()).digest()[:48] + bytes(32)
        out.append(
            TicketKeySpec(
                id=hashlib.sha256(raw).hexdigest()[:16], key=base64.b64encode(raw).decode()
            )
        )
    return tuple(out)


@dataclass
class Platform:
    """The desired state of the synthetic platform, as snapshots of it."""

    origin_port: int
    issuer: Issuer = field(default_factory=Issuer)
    sites: dict[int, tuple[SiteSpec, PoolSpec | None]] = field(default_factory=dict)
    certs: dict[int, CertSpec] = field(default_factory=dict)
    revision: int = 0
    keys: tuple[TicketKeySpec, ...] = field(default_factory=ticket_keys)

    def add(self, i: int) -> None:
        self.sites[i] = site(i, self.origin_port)
        self.certs[i] = self.issuer.issue(domain(i))

    def remove(self, i: int) -> None:
        self.sites.pop(i)
        self.certs.pop(i)

    def renew(self, i: int) -> None:
        self.certs[i] = self.issuer.issue(domain(i), days=90)

    def change_rules(self, i: int, variant: int) -> None:
        self.sites[i] = site(i, self.origin_port, variant)

    def snapshot(self) -> EdgeConfig:
        self.revision += 1
        specs = sorted(self.sites.values(), key=lambda sp: sp[0].id)
        pools = sorted((p for _, p in specs if p is not None), key=lambda p: p.id)
        return EdgeConfig(
            revision=self.revision,
            node=NODE,
            sites=tuple(s for s, _ in specs),
            pools=tuple(pools),
            certs=tuple(sorted(self.certs.values(), key=lambda c: c.id)),
            ticket_keys=self.keys,
        )


def platform(n: int, origin_port: int) -> Platform:
    p = Platform(origin_port)
    for i in range(n):
        p.add(i)
    return p


@dataclass
class Figures:
    """Per change: each apply's (step -> ms) and totals."""

    steps: dict[str, list[dict[str, float]]] = field(default_factory=dict)
    totals: dict[str, list[float]] = field(default_factory=dict)
    pss_mib: float = float("nan")
    first_ms: float = float("nan")

    def add(self, change: str, result: ApplyResult) -> None:
        self.steps.setdefault(change, []).append(dict(result.phases))
        self.totals.setdefault(change, []).append(result.duration_ms)

    def median(self, change: str, step: str | None = None) -> float:
        if step is None:
            return float(statistics.median(self.totals[change]))
        return float(statistics.median(s.get(step, 0.0) for s in self.steps[change]))


def applied(engine: NginxEngine, config: EdgeConfig) -> ApplyResult:
    result = engine.apply(config, LocalHealth())
    if not result.ok:
        raise RuntimeError(f"apply of revision {config.revision}: {result.error}")
    return result


def changes(p: Platform, n: int, samples: int) -> Iterator[tuple[str, EdgeConfig]]:
    """``samples`` rounds of: a domain added, the same removed, a certificate renewed."""
    for k in range(samples):
        new = n + k
        p.add(new)
        yield "add", p.snapshot()
        p.remove(new)
        yield "remove", p.snapshot()
        p.renew((k * 7919) % n)
        yield "renew", p.snapshot()


def measure(n: int, samples: int, local: NodeLocal, origin_port: int = DISCARD) -> Figures:
    """Apply N sites once, then ``samples`` rounds of the three changes; nginx stopped after.

    The applies are ``SPACING`` apart: nginx's master handles no signal for 100 ms after it
    started the workers of a reload (a fixed sleep), so a reload sent sooner waits for it;
    changes of a platform do not come that close, and the figure would be that wait."""
    p = platform(n, origin_port)
    engine = NginxEngine(local)
    figures = Figures()
    try:
        figures.first_ms = applied(engine, p.snapshot()).duration_ms
        for change, config in changes(p, n, samples):
            time.sleep(SPACING)
            figures.add(change, applied(engine, config))
        pid = engine.process.pid
        figures.pss_mib = tree_pss_mib(pid)[0] if pid else float("nan")
    finally:
        engine.stop()
    return figures


def node_local(base: Path, http_port: int, https_port: int) -> NodeLocal:
    base.mkdir(parents=True, exist_ok=True)
    return NodeLocal(
        prefix=base / "nginx", node_name="apply-1", http_port=http_port, https_port=https_port
    )


def load() -> str:
    return " / ".join(f"{x:.1f}" for x in os.getloadavg())
