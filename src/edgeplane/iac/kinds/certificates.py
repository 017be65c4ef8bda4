"""``certificates``: how each domain of the project gets its certificate.

An item (keyed by ``domain``) is ``CertificateRequest`` as ``POST /ssl/{domain}`` takes it: an
issue policy (``type`` ``lets_encrypt``, the configured ACME CA, with ``include_www``,
``wildcard``, ``key_type`` and ``challenge``; or ``internal``, the internal CA) with
``auto_renew``, or an upload (``type: custom``) whose chain and private key are references
(``cert_data: {file: certs/shop.pem}``, ``key_data: {env: SHOP_KEY}``): the chain is compared
by its leaf's fingerprint, the key by a digest. Fields that do not apply to a type are
refused rather than ignored.

The live policy is read from the certificate the edge serves for the domain (its newest
valid version: issuer, names, key type, ``auto_renew``), so a renewal, which keeps all of
them, changes nothing. What cannot be read from a certificate, because none is issued yet (an
ACME order runs after the apply commits; a domain waits for its ownership to be verified) or
because a certificate does not show it (a ``dns-01`` challenge without a wildcard), is kept
as the domain's requested policy (``settings.certificate`` of the domain row, audited). It
stands for the domain's policy until a certificate newer than it says otherwise: a
certificate issued through the API since then shows as drift.

An apply issues an internal certificate in its transaction, uploads a custom one there, and
starts an ACME order after it commits (``ctx.later``), as ``POST /ssl/{domain}`` does; a
deleted item revokes the domain's valid certificates.
"""

from __future__ import annotations

import logging
import weakref
from datetime import datetime
from functools import partial

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import BaseModel, Field
from sqlalchemy import select

from edgeplane.certificates import custom, internal, overview, versions
from edgeplane.certificates.acme import orders as acme_orders
from edgeplane.certificates.acme.client import AcmeError
from edgeplane.errors import EdgeplaneError, InvalidInput
from edgeplane.iac import secret
from edgeplane.iac.kind import Context, Item, Kind
from edgeplane.iac.secret import SecretRef
from edgeplane.model.certificates import CertificateRequest, CertificateSettings
from edgeplane.model.domains import DomainName, is_reserved
from edgeplane.model.enums import Role
from edgeplane.settings import Settings
from edgeplane.store.actor import Actor
from edgeplane.store.db import Database, Tx
from edgeplane.store.domains import ACTIVE, get_row
from edgeplane.store.tables import CertificateRow, DomainRow, utcnow

log = logging.getLogger("edgeplane.iac")

ACME, INTERNAL, CUSTOM = acme_orders.ISSUER, internal.ISSUER, custom.ISSUER
ACME_ONLY = ("challenge", "include_www", "wildcard", "key_type")
REQUEST = "certificate"  # the requested policy's key in the domain row's settings
UNCOMPARED = ("auto_renew", "challenge")  # set in place / not shown by a certificate


class CertificateItem(CertificateRequest):
    """A domain's certificate: an issue policy, or an upload by reference."""

    domain: DomainName
    cert_data: SecretRef | None = Field(  # type: ignore[assignment]
        None, description="type custom: the PEM chain, leaf first: a reference ({file: PATH})"
    )
    key_data: SecretRef | None = Field(  # type: ignore[assignment]
        None, description="type custom: the PEM private key: a secret reference ({env: NAME})"
    )


# The uploads the client resolved (chain and key text, by the leaf's fingerprint), for the
# transaction that canonicalised them.
_UPLOADS: weakref.WeakKeyDictionary[Tx, dict[str, tuple[str, str]]] = weakref.WeakKeyDictionary()


def _acme_fields(
    domain: str, include_www: bool, wildcard: bool, key_type: str, challenge: str | None
) -> Item:
    """An ACME policy's names and challenge as they are compared: ``www.`` names cover no
    further www; the challenge only when it is not the default one (``dns-01`` for a
    wildcard, else ``http-01``)."""
    default = "dns-01" if wildcard else "http-01"
    return {
        "include_www": include_www or domain.startswith("www."),
        "wildcard": wildcard,
        "key_type": key_type,
        "challenge": None if challenge in (None, default) else challenge,
    }


def _facts(policy: Item) -> Item:
    """What a certificate shows of its policy."""
    return {k: v for k, v in policy.items() if k not in UNCOMPARED}


def _leaf(cert: CertificateRow) -> x509.Certificate:
    return x509.load_pem_x509_certificate(cert.cert_pem.encode())


def served_policy(tx: Tx, domain: str, cert: CertificateRow) -> Item | None:
    """The policy a certificate was issued by (None: an issuer the file does not know)."""
    if cert.issuer == INTERNAL:
        return {"domain": domain, "type": INTERNAL, "auto_renew": bool(cert.auto_renew)}
    if cert.issuer == CUSTOM:
        return {
            "domain": domain,
            "type": CUSTOM,
            "cert_data": {"fingerprint": versions.fingerprint(_leaf(cert))},
            "key_data": secret.live(tx.secrets.decrypt(cert.key_encrypted)),
        }
    if cert.issuer != ACME:
        return None
    names = set(cert.names or ())
    is_rsa = isinstance(_leaf(cert).public_key(), rsa.RSAPublicKey)
    return {
        "domain": domain,
        "type": ACME,
        "auto_renew": bool(cert.auto_renew),
        **_acme_fields(
            domain,
            f"www.{domain}" in names,
            f"*.{domain}" in names,
            "rsa2048" if is_rsa else "ec256",
            None,
        ),
    }


def requested(row: DomainRow) -> tuple[Item, datetime] | None:
    """The domain's requested policy and when it was asked for."""
    stored = (row.settings or {}).get(REQUEST)
    if not isinstance(stored, dict):
        return None
    policy = {k: v for k, v in stored.items() if k != "requested_at"}
    return {"domain": row.name, **policy}, datetime.fromisoformat(stored["requested_at"])


def _fulfils(tx: Tx, cert: CertificateRow, wanted: Item) -> bool:
    policy = served_policy(tx, wanted["domain"], cert) if cert.issuer == wanted["type"] else None
    return policy is not None and _facts(policy) == _facts(wanted)


def live_policy(
    tx: Tx, row: DomainRow, cert: CertificateRow | None, history: list[CertificateRow]
) -> Item | None:
    """The domain's policy: its served certificate's (``cert``), with the challenge its
    request keeps; the request itself while no certificate of the domain (``history``, every
    version) has fulfilled it and none newer is served."""
    served = served_policy(tx, row.name, cert) if cert is not None else None
    asked = requested(row)
    if asked is None:
        return served
    wanted, at = asked
    if served is not None and _facts(served) == _facts(wanted):
        return {**served, "challenge": wanted["challenge"]} if "challenge" in served else served
    if cert is not None and cert.created_at >= at:
        return served  # issued since by other means: drift
    if any(c.created_at >= at and _fulfils(tx, c, wanted) for c in history):
        return served  # fulfilled, then revoked or expired: drift
    return wanted  # still to be issued


def set_request(tx: Tx, row: DomainRow, policy: Item | None, *, fresh: bool) -> None:
    """Keep (None: forget) the domain's requested policy; ``fresh`` dates it now even when
    it is the one kept."""
    settings = dict(row.settings or {})
    old = settings.get(REQUEST)
    if policy is None:
        if old is None:
            return
        settings.pop(REQUEST)
    else:
        new = {k: v for k, v in policy.items() if k != "domain"}
        if (
            isinstance(old, dict)
            and not fresh
            and {**old, "requested_at": None}
            == {
                **new,
                "requested_at": None,
            }
        ):
            return
        settings[REQUEST] = {**new, "requested_at": utcnow().isoformat()}
    tx.actor.require(tx.project, Role.EDITOR)
    row.settings = settings
    tx.record("policy", versions.KIND, row.name, {"policy": old}, {"policy": settings.get(REQUEST)})


def _unexpired(tx: Tx, domain: str | None = None) -> list[CertificateRow]:
    """The project's (or the domain's) active, unexpired certificates, by domain, newest
    first (the first valid now is the one the edge serves: ``versions.valid_of``)."""
    q = select(CertificateRow).where(
        CertificateRow.project_id == tx.project,
        CertificateRow.status == versions.ACTIVE,
        CertificateRow.not_after > utcnow(),
    )
    if domain is not None:
        q = q.where(CertificateRow.domain == domain)
    return list(tx.session.scalars(q.order_by(CertificateRow.domain, *versions.NEWEST_FIRST)))


def _order(
    db: Database | None, actor: Actor, project: str, domain: str, policy: Item, settings: Settings
) -> None:
    """An ACME order after the apply, as ``POST /ssl/{domain}`` runs it; a failure is logged
    (the policy stays requested: the plan shows no change, the certificate status shows
    the one served)."""
    if db is None:
        log.warning("no database to order the certificate of %s with", domain)
        return
    request = CertificateRequest(
        type="lets_encrypt",
        auto_renew=policy["auto_renew"],
        challenge=policy["challenge"],
        include_www=policy["include_www"],
        wildcard=policy["wildcard"],
        key_type=policy["key_type"],
    )
    try:
        acme_orders.provision(db, actor, project, domain, request, settings)
    except (AcmeError, EdgeplaneError, ValueError) as exc:
        log.warning("the certificate order of %s after the apply failed: %s", domain, exc)


class Certificates(Kind):
    section = "certificates"
    noun = "certificate"
    key = "domain"
    item = CertificateItem
    secrets = frozenset({"key_data"})
    audit_kinds = frozenset({versions.KIND})

    def read(self, ctx: Context) -> list[Item]:
        tx = ctx.tx
        rows = list(
            tx.session.scalars(
                select(DomainRow).where(DomainRow.project_id == tx.project).order_by(DomainRow.name)
            )
        )
        served: dict[str, CertificateRow] = {}
        now = utcnow()
        for cert in _unexpired(tx):
            if cert.not_before <= now:
                served.setdefault(cert.domain, cert)
        history: dict[str, list[CertificateRow]] = {}
        asking = [row.name for row in rows if requested(row) is not None]
        for i in range(0, len(asking), 500):
            q = select(CertificateRow).where(
                CertificateRow.project_id == tx.project,
                CertificateRow.domain.in_(asking[i : i + 500]),
            )
            for cert in tx.session.scalars(q):
                history.setdefault(cert.domain, []).append(cert)
        out = []
        for row in rows:
            policy = live_policy(tx, row, served.get(row.name), history.get(row.name, []))
            if policy is not None:
                out.append(policy)
        return out

    def canonical(self, ctx: Context, item: BaseModel) -> Item:
        assert isinstance(item, CertificateItem)
        given = item.model_fields_set
        if item.type != CUSTOM:
            for name in ("cert_data", "key_data"):
                if getattr(item, name) is not None:
                    raise InvalidInput.at(name, "only an upload (type custom) takes it")
        if item.type != ACME:
            for name in ACME_ONLY:
                if name in given:
                    raise InvalidInput.at(name, f"applies to ACME certificates, not {item.type}")
        if item.type == CUSTOM:
            if "auto_renew" in given:
                raise InvalidInput.at(
                    "auto_renew", "an upload is not renewed here: upload its successor"
                )
            return self._upload(ctx, item)
        policy: Item = {"domain": item.domain, "type": item.type, "auto_renew": item.auto_renew}
        if item.type == ACME:
            if item.wildcard and item.challenge == "http-01":
                raise InvalidInput.at(
                    "challenge", "a wildcard name can only be validated with dns-01"
                )
            policy.update(
                _acme_fields(
                    item.domain, item.include_www, item.wildcard, item.key_type, item.challenge
                )
            )
        return policy

    def _upload(self, ctx: Context, item: CertificateItem) -> Item:
        values = []
        for name in ("cert_data", "key_data"):
            ref = getattr(item, name)
            if ref is None:
                raise InvalidInput.at(name, "is required for a custom certificate")
            values.append(ref.required(name))
        chain, key = values
        try:
            parsed = custom.parse_upload(item.domain, chain, key)
        except custom.UploadError as exc:
            raise exc.to_invalid_input() from None
        _UPLOADS.setdefault(ctx.tx, {})[parsed.fingerprint] = (chain, key)
        return {
            "domain": item.domain,
            "type": CUSTOM,
            "cert_data": {"fingerprint": parsed.fingerprint},
            "key_data": secret.live(parsed.key_pem),
        }

    def exportable(self, item: Item) -> bool:
        """The certificate ``domain add`` gives a reserved name itself (internal, renewed) is
        the domain's own: export leaves it out and ``--prune`` never deletes it, so adding a
        domain to a pruned file does not take its certificate away."""
        automatic = {"domain": item["domain"], "type": INTERNAL, "auto_renew": True}
        return not (is_reserved(item["domain"]) and item == automatic)

    def exported(self, item: Item) -> Item:
        """An upload's chain as a file beside the file, its key as a variable to set."""
        doc = dict(item)
        if doc["type"] == CUSTOM:
            doc["cert_data"] = {"file": f"certs/{item['domain']}.pem"}
            doc["key_data"] = secret.placeholder(self.section, item["domain"], "key_data")
        return super().exported(doc)

    def _state(self, tx: Tx, item: Item) -> tuple[DomainRow, Item | None, bool]:
        """The domain, the policy of the certificate it is served with, and whether that one
        fulfils ``item`` (``auto_renew`` aside, which changes in place)."""
        row = get_row(tx, item["domain"])
        now = utcnow()
        cert = next((c for c in _unexpired(tx, row.name) if c.not_before <= now), None)
        current = served_policy(tx, row.name, cert) if cert is not None else None
        return row, current, current is not None and _facts(current) == _facts(item)

    def create(self, ctx: Context, item: Item) -> None:
        tx = ctx.tx
        row, current, fulfilled = self._state(tx, item)
        if item["type"] == CUSTOM:
            set_request(tx, row, None, fresh=False)
            if not fulfilled:
                upload = _UPLOADS.get(tx, {}).get(item["cert_data"]["fingerprint"])
                if upload is None:
                    raise InvalidInput.at("cert_data", "the upload's content was not given")
                custom.upload(tx, row.name, *upload)
            return
        verified = row.status == ACTIVE
        if fulfilled:
            assert current is not None
            if current["auto_renew"] != item["auto_renew"]:
                settings = CertificateSettings(auto_renew=item["auto_renew"])
                overview.set_auto_renew(tx, row.name, settings)
        elif verified and item["type"] == INTERNAL:
            internal.provision(tx, row.name, auto_renew=item["auto_renew"])
            fulfilled = True
        keep = not fulfilled or item.get("challenge") is not None
        set_request(tx, row, item if keep else None, fresh=not fulfilled)
        if not fulfilled and verified and item["type"] == ACME:
            ctx.later.append(
                partial(_order, ctx.db, tx.actor, tx.project, row.name, dict(item), ctx.settings)
            )

    def update(self, ctx: Context, before: Item, after: Item) -> None:
        self.create(ctx, after)

    def delete(self, ctx: Context, item: Item) -> None:
        tx = ctx.tx
        row = get_row(tx, item["domain"])
        set_request(tx, row, None, fresh=False)
        for cert in _unexpired(tx, row.name):
            versions.revoke(tx, row.name, cert.id)

    def warnings(
        self, ctx: Context, action: str, before: Item | None, after: Item | None
    ) -> list[str]:
        if after is None:
            return ["the edge stops serving HTTPS for the domain: its certificates are revoked"]
        if after["type"] == CUSTOM:
            return []
        tx = ctx.tx
        row = tx.session.get(DomainRow, after["domain"])  # the file's domains are made by now
        if row is None or row.project_id != tx.project:
            return []  # the change fails, naming the domain
        verified = row.status == ACTIVE
        fulfilled = self._state(tx, after)[2]
        if not verified:
            then = (
                "the internal CA issues it then"
                if after["type"] == INTERNAL
                else "apply the file again then to order it"
            )
            return [f"the domain is not verified yet: {then}"]
        if after["type"] == ACME and not fulfilled:
            return [
                "an ACME order starts once the apply has committed; the edge serves the "
                "current certificate (if any) until it completes"
            ]
        return []
