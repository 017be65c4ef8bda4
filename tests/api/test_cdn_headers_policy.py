"""The security headers policy over HTTP: stored with the CDN config, refused with the field
named when invalid (nothing changed), and in the snapshot only when it is not the default."""

from __future__ import annotations

from typing import Any

from conftest import Api
from edgeplane.protocol.headers import HeaderRuleSpec
from edgeplane.snapshot.cache import SnapshotCache
from edgeplane.store.actor import LOCAL
from edgeplane.store.tables import DomainRow, RevisionRow

CDN = "/api/v1/infrastructure/cdn"
CONFIG = {"origins": [{"url": "http://127.0.0.1:9001"}]}


def ok(r: Any, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json()


def site(api: Api) -> Any:
    with api.db.read(LOCAL, "default") as tx:
        view = SnapshotCache(api.db.secrets).view(tx.session, tx.current_revision())
    return next(s for s in view.base.sites if s.id == "default")


def revision(api: Api) -> int:
    with api.db.read(LOCAL, "default") as tx:
        return int(tx.session.get(RevisionRow, 1).value)  # type: ignore[union-attr]


def test_policy_stored_and_rendered_only_when_set(api: Api) -> None:
    with api.db.transaction(LOCAL, "default") as tx:
        tx.session.add(
            DomainRow(name="app.test", project_id="default", environment="prod", status="active")
        )
    doc = ok(api.post(CDN, json=CONFIG), 201)["cdn_deployment"]
    headers = doc["security"]["headers"]
    assert headers["x_frame_options"] == {"action": "keep", "value": "SAMEORIGIN"}
    assert headers["remove_leaking"] is True
    assert site(api).headers is None  # the defaults: rendered as before the policy existed
    policy = {
        "x_frame_options": {"action": "set", "value": "DENY"},
        "content_security_policy": {"action": "set", "value": "default-src 'self'"},
        "referrer_policy": {"action": "remove"},
        "remove_leaking": False,
    }
    body = {**CONFIG, "security": {"headers": policy}}
    doc = ok(api.post(CDN, json=body))["cdn_deployment"]  # a replacement
    assert doc["security"]["headers"]["x_frame_options"] == {"action": "set", "value": "DENY"}
    assert doc["security"]["headers"]["x_content_type_options"]["action"] == "keep"
    spec = site(api).headers
    assert spec is not None and spec.remove_leaking is False
    assert spec.rules[0] == HeaderRuleSpec(name="X-Frame-Options", action="set", value="DENY")
    assert HeaderRuleSpec(name="Referrer-Policy", action="remove") in spec.rules


BAD = [
    ({"x_frame_options": {"action": "set", "value": "ALLOW-FROM x"}}, "x_frame_options.value"),
    ({"x_frame_options": {"action": "set"}}, "set needs a value"),
    ({"referrer_policy": {"action": "remove", "value": "no-referrer"}}, "remove takes no value"),
    ({"referrer_policy": {"action": "keep", "value": "sometimes"}}, "referrer_policy.value"),
    ({"content_security_policy": {"action": "set", "value": 'a "b"'}}, "content_security"),
    ({"x_frame_options": {"action": "drop"}}, "action"),
    ({"server": {"action": "remove"}}, "server"),
]


def test_bad_policy_refused_with_no_partial_state(api: Api) -> None:
    before = ok(api.post(CDN, json=CONFIG), 201)["cdn_deployment"]
    rev = revision(api)
    for policy, says in BAD:
        r = api.post(CDN, json={**CONFIG, "security": {"headers": policy}})
        assert r.status_code == 422, r.text
        doc = r.json()
        assert doc["field"].startswith("security.headers"), doc
        assert says in doc["field"] + " " + doc["detail"], doc
    assert ok(api.get(CDN)) == before
    assert revision(api) == rev
