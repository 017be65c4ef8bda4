"""Infrastructure as code: domains with their records, certificates and the CDN config.

Built through the services as API calls build them, exported, planned and applied on SQLite
and PostgreSQL: no false drift, round trips through an emptied project, exact field-level
plans, prune, the warnings (traffic, records the edge keeps), refusals that name the object
and the field and leave the state as it was, and the certificate work that runs after an apply
commits (an ACME order), never in a plan.
"""

from __future__ import annotations

import copy
import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import func, select

from edgeplane.certificates import custom, internal, versions
from edgeplane.certificates.acme import orders as acme_orders
from edgeplane.errors import EdgeplaneError, InvalidInput
from edgeplane.iac import refs, service
from edgeplane.model.certificates import CertificateRequest
from edgeplane.services import cdn, dns_records, domains
from edgeplane.settings import Settings
from edgeplane.store.actor import LOCAL, Actor
from edgeplane.store.db import Database
from edgeplane.store.tables import (
    CDNConfigRow,
    CertificateRow,
    DNSRecordRow,
    DomainRow,
    EdgeAnalyticsRow,
    EdgeNodeRow,
    utcnow,
)
from iac_plans import paths, sections_of, summary, unchanged

# The sections' behaviour does not depend on the database: SQLite here; the engine's locks and
# transactions are tested on both (test_iac_core.py), and the end-to-end round trip applies
# every section on PostgreSQL (tests/integration/test_iac_end_to_end.py).
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


SECTIONS = ("domains", "certificates", "cdn")
UPLOAD = "up.example.net"


@pytest.fixture
def settings(tmp_path: Path, db: Database) -> Settings:
    return Settings(home=tmp_path / "home", database_url=db.url)


@pytest.fixture
def orders(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """ACME orders answered by a stand-in CA (the internal one, stored as an ACME issue):
    the domains ordered, in order."""
    done: list[str] = []

    def provision(
        db: Database,
        actor: Actor,
        project: str,
        domain: str,
        request: CertificateRequest,
        settings: Settings,
        **_: Any,
    ) -> Any:
        with db.transaction(actor, project) as tx:
            row = versions.verified_domain(tx, domain)
            issued = internal.internal_ca(tx).issue(acme_orders.names_for(row.name, request))
            cert = versions.store(
                tx,
                row,
                issuer=acme_orders.ISSUER,
                chain_pem=issued.cert_pem,
                key_pem=issued.key_pem,
                auto_renew=request.auto_renew,
            )
        done.append(domain)
        return versions.issued(cert)

    monkeypatch.setattr(acme_orders, "provision", provision)
    return done


def self_signed(name: str) -> tuple[str, str]:
    """A certificate for ``name`` and its key (traditional EC form: stored as PKCS#8)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=90))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_text = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_text


def resolved(doc: dict[str, Any], base: Path, environ: dict[str, str]) -> dict[str, Any]:
    """The document as the client sends it: references read (``edgeplane.iac.refs``)."""
    out: dict[str, Any] = refs.resolve(copy.deepcopy(doc), base, environ)
    return out


def counts(db: Database) -> dict[str, Any]:
    with db.read(LOCAL, "default") as tx:
        s = tx.session
        return {
            "revision": db.current_revision(),
            "domains": s.scalar(select(func.count()).select_from(DomainRow)),
            "records": s.scalar(select(func.count()).select_from(DNSRecordRow)),
            "certificates": s.scalar(select(func.count()).select_from(CertificateRow)),
            "cdn": s.scalar(select(func.count()).select_from(CDNConfigRow)),
        }


def build(db: Database, settings: Settings, tmp_path: Path) -> dict[str, str]:
    """Domains, records, certificates and a CDN config as API calls make them; the
    environment the export's secret references need."""
    chain, key = self_signed(UPLOAD)
    with db.transaction(LOCAL, "default") as tx:
        domains.add(tx, {"domain": "shop.test"}, settings)
        domains.add(
            tx, {"domain": "Bücher-Laden.de", "environment": "staging", "dnssec": True}, settings
        )
        domains.add(tx, {"domain": "plain.example.org", "auto_configure": False}, settings)
        domains.add(tx, {"domain": UPLOAD, "locked": True}, settings)
        dns_records.patch_records(
            tx,
            "shop.test",
            {
                "set": [
                    {"name": "mail", "type": "MX", "values": ["10 mail.shop.test"], "ttl": 300},
                    {"type": "TXT", "values": ["v=spf1 -all"]},
                    {"name": "api.shop.test.", "type": "CNAME", "values": ["Shop.Test"]},
                    {"name": "v6", "type": "AAAA", "values": ["2001:DB8:0:0::1", "2001:db8::2"]},
                ],
                "delete": [{"name": "www", "type": "A"}],
            },
        )
        # An ACME certificate for plain.example.org (with www), as an order stores it.
        row = versions.verified_domain(tx, "plain.example.org")
        names = ["plain.example.org", "www.plain.example.org"]
        issued = internal.internal_ca(tx).issue(names)
        versions.store(
            tx,
            row,
            issuer=acme_orders.ISSUER,
            chain_pem=issued.cert_pem,
            key_pem=issued.key_pem,
            auto_renew=False,
        )
        custom.upload(tx, UPLOAD, chain, key)
        cdn.configure(
            tx,
            {
                "origins": [
                    {"url": "https://origin.example.com/", "weight": 2},
                    {"url": "http://10.0.0.5:8080", "backup": True},
                ],
                "cache_rules": [
                    {
                        "pattern": "/static/*",
                        "ttl": 86400,
                        "cache_key": {"query": "none", "headers": ["Accept-Encoding"]},
                    },
                    {"id": "css", "pattern": "*.css", "origin_cache_control": "honour"},
                ],
                "security": {
                    "hsts_max_age": 3600,
                    "rate_limit": {"rate": 100, "burst": 20},
                    "ip_deny": ["192.0.2.7/24"],
                },
            },
        )
        cdn.create_rule(tx, {"pattern": "/api/*", "bypass": True}, position=0)
    (tmp_path / "certs").mkdir(exist_ok=True)
    (tmp_path / "certs" / f"{UPLOAD}.pem").write_text(chain)
    return {"EDGEPLANE_SECRET_CERTIFICATES_UP_EXAMPLE_NET_KEY_DATA": key}


def test_what_the_api_built_exports_and_plans_as_no_change(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    environ = build(db, settings, tmp_path)
    exported = service.export(db, LOCAL, "default", settings)
    # Only the sections that hold something: no empty one, no shipped alert rule or region.
    assert sorted(exported) == sorted(["version", "project", *SECTIONS])
    doc = mine(exported)
    by_name = {d["name"]: d for d in doc["domains"]}
    assert sorted(by_name) == ["plain.example.org", "shop.test", UPLOAD, "xn--bcher-laden-thb.de"]
    # Only the user's records, canonical and sorted by name, type and values; defaults left out.
    assert by_name["shop.test"]["records"] == [
        {"type": "A", "proxied": True},
        {"type": "CAA", "values": ['0 issue "letsencrypt.org"', '0 issuewild "letsencrypt.org"']},
        {"type": "TXT", "values": ['"v=spf1 -all"']},
        {"name": "api", "type": "CNAME", "values": ["shop.test."]},
        {"name": "mail", "type": "MX", "ttl": 300, "values": ["10 mail.shop.test."]},
        {"name": "v6", "type": "AAAA", "values": ["2001:db8::1", "2001:db8::2"]},
    ]
    assert by_name["xn--bcher-laden-thb.de"]["environment"] == "staging"
    assert by_name["xn--bcher-laden-thb.de"]["dnssec"] is True
    assert by_name["plain.example.org"]["records"] == []
    assert by_name[UPLOAD]["locked"] is True
    certs = {c["domain"]: c for c in doc["certificates"]}
    # The pending domain has no certificate; the reserved name's own (the internal CA's,
    # renewed, that `domain add` gives it) is the domain's: not exported.
    assert certs == {
        "plain.example.org": {"domain": "plain.example.org", "auto_renew": False},
        UPLOAD: {
            "domain": UPLOAD,
            "type": "custom",
            "cert_data": {"file": f"certs/{UPLOAD}.pem"},
            "key_data": {"env": "EDGEPLANE_SECRET_CERTIFICATES_UP_EXAMPLE_NET_KEY_DATA"},
        },
    }
    rules = doc["cdn"]["cache_rules"]
    assert [r["pattern"] for r in rules] == ["/api/*", "/static/*", "*.css"]
    assert rules[2]["id"] == "css" and all(r["id"].startswith("rule-") for r in rules[:2])
    assert doc["cdn"]["origins"][0] == {"url": "https://origin.example.com", "weight": 2}
    assert doc["cdn"]["security"]["ip_deny"] == ["192.0.2.0/24"]

    planned = service.plan(db, LOCAL, "default", settings, resolved(exported, tmp_path, environ))
    assert unchanged(planned), planned.doc()["changes"]
    assert planned.doc()["warnings"] == []
    assert planned.doc()["unmanaged"] == {}  # shop.test's own certificate is not counted
    # The same with the sections alone, pruning: nothing of them is left out, and shop.test's
    # own certificate is not deleted.
    planned = service.plan(
        db, LOCAL, "default", settings, resolved(doc, tmp_path, environ), prune=True
    )
    assert unchanged(planned), planned.doc()["changes"]


FILE: dict[str, Any] = {
    "version": 1,
    "domains": [
        {
            "name": "Shop.Test.",
            "records": [
                {"name": "www", "type": "CNAME", "values": ["shop.test"]},
                {"type": "A", "proxied": True},
                {"name": "mail.shop.test.", "type": "MX", "values": ["10 mx.shop.test"]},
                {"name": "mx", "type": "A", "ttl": 60, "values": ["192.0.2.25"]},
            ],
        },
        {"name": "auto.test"},  # the records `domain add` makes
        {"name": "bare.test", "auto_configure": False, "dnssec": True},
        {"name": "pending-shop.com", "environment": "dev", "locked": True},
    ],
    "certificates": [
        {"domain": "shop.test", "type": "internal", "auto_renew": False},
        {"domain": "auto.test", "include_www": False, "challenge": "dns-01"},
        {"domain": "bare.test", "type": "internal"},
    ],
    "cdn": {
        "origins": [{"url": "https://origin.example.com"}],
        "cache_rules": [
            {"pattern": "/static/*", "ttl": 600},
            {"id": "html", "pattern": "*.html", "bypass": True},
        ],
        "security": {"force_https": False, "ip_allow": ["10.0.0.0/8"]},
    },
}


def test_a_file_applies_on_an_empty_project_and_round_trips(
    db: Database, settings: Settings, tmp_path: Path, orders: list[str]
) -> None:
    planned = service.plan(db, LOCAL, "default", settings, FILE)
    # The certificates are planned against the domains as the file's domains section leaves
    # them: `domain add` gives a reserved name the internal CA's certificate (renewed), so
    # bare.test's is no change, shop.test's an update, and auto.test's ACME one an update.
    assert summary(planned) == {"create": 5, "update": 2, "replace": 0, "delete": 0}
    assert {k: v for k, v in paths(planned).items() if not k.startswith("domains[")} == {
        "certificates[shop.test]": ["update", "auto_renew"],
        "certificates[auto.test]": [
            "update",
            "challenge",
            "include_www",
            "key_type",
            "type",
            "wildcard",
        ],
        "cdn": ["create", "cache_rules", "origins", "security"],
    }
    assert orders == [] and counts(db)["domains"] == 0  # a plan writes nothing, orders nothing
    warnings = planned.doc()["warnings"]
    assert any(w.startswith("certificates[auto.test]: an ACME order starts") for w in warnings)

    applied = service.apply(db, LOCAL, "default", settings, FILE)
    assert summary(applied) == {"create": 5, "update": 2, "replace": 0, "delete": 0}
    assert orders == ["auto.test"]  # after the commit
    again = service.plan(db, LOCAL, "default", settings, FILE)
    assert unchanged(again), again.doc()["changes"]

    # The verification state `domain add` gives: reserved names verified with their internal
    # certificate at once; a public name pending, with its token.
    with db.read(LOCAL, "default") as tx:
        shop = domains.get(tx, "shop.test")
        pending = domains.get(tx, "pending-shop.com")
        auto = domains.get(tx, "auto.test")
    assert shop.status == "active" and shop.verification.method == "reserved"
    assert shop.certificate is not None and shop.certificate.issuer == "internal"
    assert not shop.certificate.auto_renew
    assert pending.status == "pending" and pending.verification.state == "pending"
    assert len(pending.verification.token) == 32 and pending.environment == "dev"
    assert pending.certificate is None and pending.locked
    assert auto.auto_configure and auto.certificate is not None
    assert auto.certificate.issuer == "lets_encrypt"
    assert auto.certificate.names == ["auto.test"]

    first = mine(service.export(db, LOCAL, "default", settings))
    by_name = {d["name"]: d for d in first["domains"]}
    assert by_name["auto.test"]["records"] == [
        {"type": "A", "proxied": True},
        {"type": "CAA", "values": ['0 issue "letsencrypt.org"', '0 issuewild "letsencrypt.org"']},
        {"name": "www", "type": "A", "proxied": True},
    ]
    assert by_name["bare.test"] == {"name": "bare.test", "dnssec": True, "records": []}
    # bare.test's certificate is the one `domain add` gave it: not exported; shop.test's,
    # not renewed, is.
    assert {c["domain"]: c for c in first["certificates"]} == {
        "auto.test": {"domain": "auto.test", "include_www": False, "challenge": "dns-01"},
        "shop.test": {"domain": "shop.test", "type": "internal", "auto_renew": False},
    }
    ids = [r["id"] for r in first["cdn"]["cache_rules"]]
    assert ids[1] == "html" and ids[0].startswith("rule-")

    # Empty the project through the file, then apply the export on it: the same export.
    emptied = {"version": 1, "domains": [], "certificates": [], "cdn": None}
    with pytest.raises(EdgeplaneError, match="locked"):
        service.apply(db, LOCAL, "default", settings, emptied, prune=True)
    unlocked = copy.deepcopy(FILE)
    unlocked["domains"][3]["locked"] = False
    service.apply(db, LOCAL, "default", settings, unlocked)
    gone = service.apply(db, LOCAL, "default", settings, emptied, prune=True)
    # bare.test's own certificate is not pruned: it goes with its domain.
    assert summary(gone) == {"create": 0, "update": 0, "replace": 0, "delete": 7}
    assert "certificates[bare.test]" not in paths(gone)
    assert {k: v for k, v in counts(db).items() if k != "revision"} == {
        "domains": 0,
        "records": 0,
        "certificates": 0,
        "cdn": 0,
    }
    service.apply(db, LOCAL, "default", settings, {"version": 1, **first})
    second = mine(service.export(db, LOCAL, "default", settings))
    assert second == first
    assert orders == ["auto.test", "auto.test"]
    assert unchanged(service.plan(db, LOCAL, "default", settings, {"version": 1, **first}))


def test_one_change_of_each_kind_is_planned_exactly_and_applied(
    db: Database, settings: Settings, tmp_path: Path, orders: list[str]
) -> None:
    environ = build(db, settings, tmp_path)
    base = service.export(db, LOCAL, "default", settings)
    doc = copy.deepcopy(base)
    by_name = {d["name"]: d for d in doc["domains"]}
    shop = by_name["shop.test"]
    shop["records"][4]["ttl"] = 600  # mail MX
    shop["records"].append({"name": "new", "type": "TXT", "values": ["hello"]})
    by_name["xn--bcher-laden-thb.de"]["dnssec"] = False
    by_name[UPLOAD]["locked"] = False
    by_name["plain.example.org"]["environment"] = "dev"
    certs = {c["domain"]: c for c in doc["certificates"]}
    assert "shop.test" not in certs  # its own certificate, not exported: changed, it is
    doc["certificates"].append({"domain": "shop.test", "type": "internal", "auto_renew": False})
    certs["plain.example.org"]["include_www"] = False
    chain, key = self_signed(UPLOAD)
    (tmp_path / "certs" / "next.pem").write_text(chain)
    certs[UPLOAD]["cert_data"] = {"file": "certs/next.pem"}
    environ["NEXT_KEY"] = key
    certs[UPLOAD]["key_data"] = {"env": "NEXT_KEY"}
    rules = doc["cdn"]["cache_rules"]
    api_rule, static, _css = rules
    static["ttl"] = 60
    doc["cdn"]["cache_rules"] = [static, api_rule, {"pattern": "/img/*"}]  # moved, css gone
    doc["cdn"]["security"]["rate_limit"]["rate"] = 50
    doc["cdn"]["origins"][0]["weight"] = 3

    planned = service.plan(db, LOCAL, "default", settings, resolved(doc, tmp_path, environ))
    new_id = "rule-" + hashlib.sha256(b"/img/*").hexdigest()[:12]  # named after its pattern
    assert paths(planned) == {
        "domains[shop.test]": ["update", "records[mail MX].ttl", "records[new TXT]"],
        "domains[xn--bcher-laden-thb.de]": ["update", "dnssec"],
        "domains[up.example.net]": ["update", "locked"],
        "domains[plain.example.org]": ["replace", "environment"],
        "certificates[shop.test]": ["update", "auto_renew"],
        # Planned against the domain as its replace leaves it: added again, with the internal
        # certificate `domain add` gives a reserved name, not the ACME one it had.
        "certificates[plain.example.org]": [
            "update",
            "auto_renew",
            "include_www",
            "key_type",
            "type",
            "wildcard",
        ],
        "certificates[up.example.net]": ["update", "cert_data.fingerprint", "key_data"],
        "cdn": [
            "update",
            *sorted(
                [
                    "cache_rules[css]",
                    f"cache_rules[{new_id}]",
                    f"cache_rules[{static['id']}].ttl",
                    "origins[0].weight",
                    "security.rate_limit.rate",
                ]
            ),
        ],
    }
    plain_cert = next(
        c
        for c in planned.doc()["changes"]
        if c["key"] == "plain.example.org" and c["section"] == "certificates"
    )
    assert {"path": "type", "before": "internal", "after": "lets_encrypt"} in plain_cert["fields"]
    assert {"path": "include_www", "before": None, "after": False} in plain_cert["fields"]
    masked = next(
        c for c in planned.doc()["changes"] if c["key"] == UPLOAD and c["section"] == "certificates"
    )
    assert {"path": "key_data", "before": "(secret)", "after": "(secret)"} in masked["fields"]
    warnings = planned.doc()["warnings"]
    assert any("DNSSEC is turned off" in w for w in warnings)
    assert any(
        w.startswith("domains[plain.example.org]: changing the environment deletes")
        for w in warnings
    )

    applied = service.apply(db, LOCAL, "default", settings, resolved(doc, tmp_path, environ))
    assert summary(applied) == {"create": 0, "update": 7, "replace": 1, "delete": 0}
    after = service.plan(db, LOCAL, "default", settings, resolved(doc, tmp_path, environ))
    assert unchanged(after), after.doc()["changes"]
    with db.read(LOCAL, "default") as tx:
        assert [r.id for r in cdn.list_rules(tx)] == [static["id"], api_rule["id"], new_id]
        assert cdn.get_rule(tx, static["id"]).ttl == 60
        mx = next(r for r in dns_records.list_records(tx, "shop.test").records if r.type == "MX")
        assert mx.ttl == 600
        status = versions.status(tx, UPLOAD)
        assert status.certificate is not None and status.certificate.issuer == "custom"
        assert len(status.certificates) == 3  # internal (at add), two uploads
        plain = domains.get(tx, "plain.example.org")
        assert plain.environment == "dev" and plain.certificate is not None
    # The replaced domain lost its ACME certificate; include_www false was ordered anew.
    assert orders == ["plain.example.org"]


def test_an_unchanged_policy_plans_nothing_after_a_renewal(
    db: Database, settings: Settings, tmp_path: Path, orders: list[str]
) -> None:
    doc = {
        "version": 1,
        "domains": [{"name": "renew.test"}, {"name": "acme.test"}],
        "certificates": [
            {"domain": "renew.test", "type": "internal"},
            {"domain": "acme.test", "wildcard": True, "key_type": "ec256"},
        ],
    }
    service.apply(db, LOCAL, "default", settings, doc)
    assert orders == ["acme.test"]
    with db.transaction(LOCAL, "default") as tx:
        internal.provision(tx, "renew.test")  # what the renewal loop does
        request = CertificateRequest(type="lets_encrypt", wildcard=True)
    acme_orders.provision(db, LOCAL, "default", "acme.test", request, settings)
    with db.read(LOCAL, "default") as tx:
        assert len(versions.status(tx, "renew.test").certificates) == 2
        served = versions.status(tx, "acme.test").certificate
        assert served is not None and "*.acme.test" in served.names
    assert unchanged(service.plan(db, LOCAL, "default", settings, doc))

    # A certificate issued through the API since, of another policy, is drift: a change.
    with db.transaction(LOCAL, "default") as tx:
        versions.revoke(tx, "acme.test")
        versions.revoke(tx, "acme.test")
    planned = service.plan(db, LOCAL, "default", settings, doc)
    assert paths(planned) == {
        "certificates[acme.test]": [
            "update",
            "include_www",
            "key_type",
            "type",
            "wildcard",
        ]
    }


def test_a_domain_waiting_for_verification_keeps_its_requested_policy(
    db: Database, settings: Settings, orders: list[str]
) -> None:
    doc = {
        "version": 1,
        "domains": [{"name": "later-shop.com"}],
        "certificates": [{"domain": "later-shop.com", "include_www": False}],
    }
    planned = service.plan(db, LOCAL, "default", settings, doc)
    assert "certificates[later-shop.com]: the domain is not verified yet" in " ".join(
        planned.doc()["warnings"]
    )
    service.apply(db, LOCAL, "default", settings, doc)
    assert orders == []  # nothing to order before the domain is verified
    assert unchanged(service.plan(db, LOCAL, "default", settings, doc))
    # Verified: the internal CA's certificate, newer than the request, is drift until the file
    # is applied again, which orders the ACME one.
    with db.transaction(LOCAL, "default") as tx:
        row = tx.session.get(DomainRow, "later-shop.com")
        assert row is not None
        domains.mark_verified(tx, row, "dns", "ok")
    assert paths(service.plan(db, LOCAL, "default", settings, doc)) == {
        "certificates[later-shop.com]": ["update", "include_www", "key_type", "type", "wildcard"]
    }
    service.apply(db, LOCAL, "default", settings, doc)
    assert orders == ["later-shop.com"]
    assert unchanged(service.plan(db, LOCAL, "default", settings, doc))


def test_prune_deletes_and_warns_of_traffic_and_of_records_the_edge_keeps(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    environ = build(db, settings, tmp_path)
    with db.transaction(LOCAL, "default") as tx:
        tx.session.add(
            EdgeNodeRow(id="node-1", name="n1", region="eu-central", address="192.0.2.9")
        )
        tx.session.add(
            EdgeAnalyticsRow(
                node_id="node-1",
                domain="shop.test",
                minute=utcnow().replace(second=0, microsecond=0) - timedelta(minutes=5),
                project_id="default",
                requests=1234,
            )
        )
    doc = resolved(mine(service.export(db, LOCAL, "default", settings)), tmp_path, environ)
    # shop.test's certificate is its own (`domain add` gave it): not in the export.
    assert "shop.test" not in {c["domain"] for c in doc["certificates"]}
    kept = {**doc, "domains": [d for d in doc["domains"] if d["name"] != "shop.test"]}
    kept["certificates"] = [c for c in doc["certificates"] if c["domain"] != "plain.example.org"]
    kept.pop("cdn")

    left_alone = service.plan(db, LOCAL, "default", settings, kept)
    assert unchanged(left_alone)
    # Left alone: the domain and plain.example.org's certificate; not shop.test's own one.
    assert mine(left_alone.doc()["unmanaged"]) == {"domains": 1, "certificates": 1}

    pruned = service.plan(db, LOCAL, "default", settings, {**kept, "cdn": None}, prune=True)
    # shop.test's own certificate is never pruned (it goes with its domain).
    assert paths(pruned).keys() == {
        "domains[shop.test]",
        "certificates[plain.example.org]",
        "cdn",
    }
    assert {c["action"] for c in pruned.doc()["changes"]} == {"delete"}
    warnings = pruned.doc()["warnings"]
    assert (
        "domains[shop.test]: the domain serves traffic: the edge answered 1234 requests for it "
        "in the last 24 hours"
    ) in warnings
    assert (
        "certificates[plain.example.org]: the edge stops serving HTTPS for the domain: its "
        "certificates are revoked"
    ) in warnings
    assert not any(w.startswith("certificates[shop.test]") for w in warnings)
    assert any(w.startswith("cdn: the project's 3 active domain(s) lose") for w in warnings)

    before = counts(db)
    service.apply(db, LOCAL, "default", settings, {**kept, "cdn": None}, prune=True)
    now = counts(db)
    assert now["domains"] == before["domains"] - 1 and now["cdn"] == 0
    with db.read(LOCAL, "default") as tx:
        assert cdn.find(tx) is None
        assert versions.newest_valid(tx, "plain.example.org") is None  # revoked
        assert versions.newest_valid(tx, "shop.test") is None  # gone with its domain

    # Records at the names the edge keeps: the glue of its name servers, ACME answers.
    doc = resolved(mine(service.export(db, LOCAL, "default", settings)), tmp_path, environ)
    plain = next(d for d in doc["domains"] if d["name"] == "plain.example.org")
    plain["records"] = [
        {"name": "ns-n1", "type": "A", "values": ["198.51.100.1"]},
        {"name": "_acme-challenge", "type": "TXT", "values": ["mine"]},
        {"name": "fine", "type": "A", "values": ["198.51.100.2"]},
    ]
    warnings = service.plan(db, LOCAL, "default", settings, doc).doc()["warnings"]
    assert [w.split(":")[0] for w in warnings] == ["domains[plain.example.org]"] * 2
    assert "ACME DNS-01 answers" in warnings[0] and "(they join this TXT)" in warnings[0]
    assert "edge's name server ns-n1 answers at this name" in warnings[1]


def test_invalid_items_are_refused_by_object_and_field_and_change_nothing(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    environ = build(db, settings, tmp_path)
    base = resolved(service.export(db, LOCAL, "default", settings), tmp_path, environ)
    before = counts(db)

    def refused(doc: dict[str, Any], field: str) -> str:
        for run in (service.plan, service.apply):
            with pytest.raises(InvalidInput) as err:
                run(db, LOCAL, "default", settings, doc)
            assert err.value.field == field, (err.value.field, err.value.message)
        assert counts(db) == before
        return err.value.message

    doc = copy.deepcopy(base)
    doc["domains"][0]["records"].append({"name": "bad", "type": "A", "values": ["300.1.1.1"]})
    key = doc["domains"][0]["name"]
    n = len(doc["domains"][0]["records"]) - 1
    assert "IPv4" in refused(doc, f"domains[{key}].records[{n}].values[0]")

    doc = copy.deepcopy(base)
    doc["domains"].append({"name": "co.uk"})
    assert "public suffix" in refused(doc, "domains[co.uk].name")

    doc = copy.deepcopy(base)
    doc["certificates"].append({"domain": "shop.test", "type": "internal", "include_www": False})
    assert "applies to ACME certificates, not internal" in refused(
        doc, "certificates[shop.test].include_www"
    )

    doc = copy.deepcopy(base)
    upload = next(c for c in doc["certificates"] if c.get("type") == "custom")
    upload["key_data"] = {"env": "OTHER", "value": self_signed(UPLOAD)[1]}
    message = refused(doc, f"certificates[{UPLOAD}].key_data")
    assert message == (
        f"certificates[{UPLOAD}] (item 2 of the section): key_data: the private key does not "
        f"belong to the certificate for {UPLOAD} (public keys differ); upload the key the "
        "certificate was issued for"
    )

    doc = copy.deepcopy(base)
    doc["cdn"]["cache_rules"][0]["pattern"] = "static"
    refused(doc, "cdn.cache_rules.0.pattern")

    # A valid file that a service refuses half way (a locked domain cannot go): nothing of the
    # changes before it stays.
    doc = copy.deepcopy(base)
    doc["cdn"]["security"]["hsts_max_age"] = 60
    doc["domains"] = [d for d in doc["domains"] if d["name"] != UPLOAD]
    doc["certificates"] = [c for c in doc["certificates"] if c["domain"] != UPLOAD]
    with pytest.raises(EdgeplaneError) as err:
        service.apply(db, LOCAL, "default", settings, doc, prune=True)
    assert err.value.message.startswith(f"domains[{UPLOAD}]") and "locked" in err.value.message
    assert counts(db) == before
    with db.read(LOCAL, "default") as tx:
        assert cdn.get(tx).security.hsts_max_age == 3600


def test_cdn_rules_keep_their_ids_when_moved_and_the_config_goes_only_with_prune(
    db: Database, settings: Settings
) -> None:
    doc: dict[str, Any] = {
        "version": 1,
        "cdn": {
            "cache_rules": [
                {"id": "a", "pattern": "/a/*"},
                {"id": "b", "pattern": "/b/*"},
                {"id": "c", "pattern": "/c/*"},
            ]
        },
    }
    service.apply(db, LOCAL, "default", settings, doc)
    doc["cdn"]["cache_rules"].reverse()
    planned = service.plan(db, LOCAL, "default", settings, doc)
    assert [
        (f["path"], f["before"], f["after"]) for c in planned.doc()["changes"] for f in c["fields"]
    ] == [("cache_rules (order)", ["a", "b", "c"], ["c", "b", "a"])]
    service.apply(db, LOCAL, "default", settings, doc)
    with db.read(LOCAL, "default") as tx:
        assert [r.id for r in cdn.list_rules(tx)] == ["c", "b", "a"]
    assert unchanged(service.plan(db, LOCAL, "default", settings, doc))

    left = service.plan(db, LOCAL, "default", settings, {"version": 1, "cdn": None})
    assert unchanged(left) and left.doc()["unmanaged"]["cdn"] == 1
    assert paths(service.plan(db, LOCAL, "default", settings, {"cdn": None}, prune=True)) == {
        "cdn": ["delete", "cache_rules", "origins", "security"]
    }
    service.apply(db, LOCAL, "default", settings, {"cdn": None}, prune=True)
    assert counts(db)["cdn"] == 0


def test_drift_names_the_record_and_the_policy_changed_since_the_apply(
    db: Database, settings: Settings, orders: list[str]
) -> None:
    doc = {
        "version": 1,
        "domains": [{"name": "drift.test"}],
        "certificates": [{"domain": "drift.test", "type": "internal", "challenge": None}],
    }
    with pytest.raises(InvalidInput, match="applies to ACME certificates"):
        service.plan(db, LOCAL, "default", settings, doc)
    doc["certificates"] = [{"domain": "drift.test", "type": "internal"}]
    service.apply(db, LOCAL, "default", settings, doc)
    assert service.drift_report(db, LOCAL, "default", settings)["drifted"] == []
    with db.transaction(LOCAL, "default") as tx:
        dns_records.patch_records(
            tx, "drift.test", {"set": [{"name": "www", "type": "A", "values": ["192.0.2.1"]}]}
        )
        domains.update(tx, "drift.test", {"locked": True})
    drifted = service.drift_report(db, LOCAL, "default", settings)["drifted"]
    assert [(d["key"], d["change"]) for d in drifted] == [("drift.test", "changed")]
    assert sorted(f["path"] for f in drifted[0]["fields"]) == [
        "locked",
        "records[www A].proxied",
        "records[www A].values",
    ]
    assert {e["action"] for e in drifted[0]["changed_by"]} == {"update"}


def mine(doc: dict[str, Any]) -> dict[str, Any]:
    return sections_of(doc, SECTIONS)
