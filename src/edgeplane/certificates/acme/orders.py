"""ACME orders for verified domains, answered by the edge itself.

HTTP-01 answers are published in the snapshot and served by every edge node; DNS-01 answers
are TXT records in the domain's zone on every node's DNS server (wildcards need them). Before
the CA is told to validate, the order waits until every live node serves what was published:
HTTP-01 is fetched from each node, and every node's heartbeat must report the zone's current
serial (DNS-01 answers, and the names the CA resolves for HTTP-01, are in the zone).
Whatever was published is removed again, also when the order fails.

The ACME account of each CA directory is made once: its key is kept encrypted in the
``secrets`` table, its URL beside it. Network I/O never runs inside a database transaction.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
from sqlalchemy import select

from edgeplane.certificates import versions
from edgeplane.certificates.acme import challenges as acme_challenges
from edgeplane.certificates.acme import client as acme_client
from edgeplane.model.certificates import Certificate, CertificateIssued, CertificateRequest
from edgeplane.model.enums import Role
from edgeplane.services import liveness, zone_serials
from edgeplane.settings import Settings
from edgeplane.snapshot.load import load_dns
from edgeplane.snapshot.zones import build_zone
from edgeplane.store.actor import LOCAL, PLATFORM_PROJECT, Actor
from edgeplane.store.db import Database
from edgeplane.store.tables import EdgeNodeRow, SecretRow

ISSUER = "lets_encrypt"  # the spec's name for ACME certificates, whatever the CA
PUBLISH_TIMEOUT_S = 20.0


def acme_settings(settings: Settings) -> acme_client.AcmeSettings:
    return acme_client.AcmeSettings(
        directory_url=settings.acme_directory,
        contact_email=settings.acme_email,
        eab_kid=settings.acme_eab_kid,
        eab_hmac_key=settings.acme_eab_hmac_key,
        ca_bundle=settings.acme_ca_bundle,
    )


def _account_secret(directory: str) -> str:
    return "acme-account-" + hashlib.sha256(directory.encode()).hexdigest()[:16]


def account(db: Database, settings: acme_client.AcmeSettings) -> tuple[str, str]:
    """(account key PEM, account URL) for the CA, registered on first use."""
    name = _account_secret(settings.directory_url)
    with db.read(LOCAL, PLATFORM_PROJECT) as tx:
        row = tx.session.get(SecretRow, name)
        if row is not None and row.public:
            return tx.secrets.decrypt(row.value_encrypted), row.public
    key = acme_client.new_account_key()
    url = acme_client.register(settings, key)
    with db.transaction(LOCAL, PLATFORM_PROJECT) as tx:
        existing = tx.session.get(SecretRow, name)
        if existing is not None and existing.public:  # registered meanwhile by another order
            return tx.secrets.decrypt(existing.value_encrypted), existing.public
        if existing is not None:
            tx.session.delete(existing)
            tx.session.flush()
        tx.session.add(SecretRow(name=name, value_encrypted=tx.secrets.encrypt(key), public=url))
    return key, url


def reregister(db: Database, settings: acme_client.AcmeSettings, key: str) -> str:
    url = acme_client.register(settings, key)
    with db.transaction(LOCAL, PLATFORM_PROJECT) as tx:
        row = tx.session.get(SecretRow, _account_secret(settings.directory_url))
        if row is not None:
            row.public = url
    return url


@dataclass(frozen=True)
class _Node:
    name: str
    address: str | None
    http_port: int | None
    serial: int  # the zone's serial the node's DNS serves


@dataclass
class EdgeSink:
    """Publishes challenge answers through the snapshot and waits until the edge serves them."""

    db: Database
    actor: Actor
    project: str
    zone: str
    timeout_s: float = PUBLISH_TIMEOUT_S
    http: dict[str, tuple[str, str]] = field(default_factory=dict)  # token -> (row, answer)
    txt: dict[tuple[str, str], str] = field(default_factory=dict)  # (name, value) -> row

    def _publish(self, kind: str, name: str, value: str) -> str:
        with self.db.transaction(self.actor, self.project) as tx:
            return acme_challenges.publish(tx, self.zone, kind, name, value)

    def _remove(self, row_id: str) -> None:
        with self.db.transaction(self.actor, self.project) as tx:
            acme_challenges.remove(tx, [row_id])

    def publish_http01(self, domain: str, token: str, key_authorization: str) -> None:
        row = self._publish(acme_challenges.HTTP01, token, key_authorization)
        self.http[token] = (row, key_authorization)

    def publish_dns01(self, name: str, value: str) -> None:
        self.txt[(name, value)] = self._publish(acme_challenges.DNS01, name, value)

    def unpublish_http01(self, token: str) -> None:
        entry = self.http.pop(token, None)
        if entry is not None:
            self._remove(entry[0])

    def unpublish_dns01(self, name: str, value: str) -> None:
        row = self.txt.pop((name, value), None)
        if row is not None:
            self._remove(row)

    def _live_nodes(self) -> tuple[list[_Node], int]:
        """The live nodes and the serial the zone has now."""
        with self.db.read(LOCAL, PLATFORM_PROJECT) as tx:
            live = liveness.live_ids(tx)
            served = zone_serials.of_zone(tx, f"{self.zone}.")
            nodes = [
                _Node(
                    name=n.name,
                    address=n.address,
                    http_port=n.http_port,
                    serial=served.get(n.id, 0),
                )
                for n in tx.session.scalars(select(EdgeNodeRow))
                if n.id in live
            ]
            dns = load_dns(tx.session, tx.secrets, only=self.zone)
            zone = next((z for z in dns.zones if z.name == self.zone), None)
            serial = build_zone(zone, dns).serial if zone is not None else 0
        return nodes, serial

    def _serves_http(self, client: httpx.Client, node: _Node) -> bool:
        if not node.address or not node.http_port:
            return True  # nothing to ask: the CA will tell
        host = f"[{node.address}]" if ":" in node.address else node.address
        for token, (_row, answer) in self.http.items():
            try:
                r = client.get(
                    f"http://{host}:{node.http_port}/.well-known/acme-challenge/{token}",
                    headers={"Host": self.zone},
                )
            except httpx.HTTPError:
                return False
            if r.status_code != 200 or r.text.strip() != answer:
                return False
        return True

    def wait_published(self) -> None:
        deadline = time.monotonic() + self.timeout_s
        with httpx.Client(timeout=2.0, trust_env=False) as client:
            while True:
                nodes, serial = self._live_nodes()
                if not nodes:
                    raise acme_client.AcmeError(
                        "no live edge node to answer the ACME challenge", status="sink"
                    )
                waiting = [
                    n.name
                    for n in nodes
                    if (self.http and not self._serves_http(client, n))
                    or n.serial < serial  # the zone as it is now (names the CA resolves)
                ]
                if not waiting:
                    return
                if time.monotonic() > deadline:
                    raise acme_client.AcmeError(
                        f"edge nodes {', '.join(waiting)} did not serve the challenge within "
                        f"{self.timeout_s:.0f} s",
                        status="sink",
                    )
                time.sleep(0.02)


def names_for(domain: str, request: CertificateRequest) -> list[str]:
    names = [domain]
    if request.include_www and not domain.startswith("www."):
        names.append(f"www.{domain}")
    if request.wildcard:
        names.append(f"*.{domain}")
    return names


def provision(
    db: Database,
    actor: Actor,
    project: str,
    domain: str,
    request: CertificateRequest,
    settings: Settings,
    *,
    key_pem: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> CertificateIssued:
    """Order a certificate from the configured CA for a verified domain, and keep it; with
    ``key_pem`` (a renewal), for that key."""
    with db.read(actor, project) as tx:
        tx.actor.require(tx.project, Role.EDITOR)
        row = versions.verified_domain(tx, domain)
        zone = row.name
    names = names_for(zone, request)
    challenge = request.challenge or ("dns-01" if request.wildcard else "http-01")
    config = acme_settings(settings)
    say = progress or (lambda _m: None)
    key, url = account(db, config)
    say(f"account {url}")
    sink = EdgeSink(db, actor, project, zone)

    def order(account_url: str) -> acme_client.Issued:
        return acme_client.obtain(
            config,
            key,
            account_url,
            names,
            challenge,
            sink,
            key_type=request.key_type,
            key_pem=key_pem,
            progress=say,
        )

    try:
        issued = order(url)
    except acme_client.AcmeError as exc:
        if exc.problem is None or not exc.problem.endswith(":accountDoesNotExist"):
            raise
        # The CA forgot the account (a reset test CA, a deactivated account): register the
        # same key again and order once more.
        url = reregister(db, config, key)
        say(f"account registered again: {url}")
        issued = order(url)
    with db.transaction(actor, project) as tx:
        row = versions.verified_domain(tx, zone)
        cert: Certificate = versions.store(
            tx,
            row,
            issuer=ISSUER,
            chain_pem=issued.chain_pem,
            key_pem=issued.key_pem,
            auto_renew=request.auto_renew,
        )
    say(f"stored {cert.id}, valid until {cert.not_after.isoformat()}")
    return versions.issued(cert)
