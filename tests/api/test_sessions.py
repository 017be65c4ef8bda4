"""Dashboard sign-in over HTTP: sessions from a token or a login, the cookie's attributes,
CSRF on writes, roles and revocation carried by the session, logins and their management,
failed sign-ins throttled, and no secret in any answer."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import update

from conftest import Api
from edgeplane.store.tables import SessionRow, utcnow

SESSION = "/api/v1/session"
LOGINS = "/api/v1/logins"
DOMAINS = "/api/v1/infrastructure/domains"
PASSWORD = "correct horse battery"


def sign_in(api: Api, **body: Any) -> Any:
    """POST /session with no bearer token (a browser), keeping the cookie in the client."""
    return api.client.post(SESSION, json=body)


def csrf(api: Api) -> str:
    r = api.client.get(SESSION)
    assert r.status_code == 200, r.text
    return str(r.json()["csrf_token"])


def test_token_sign_in_sets_a_strict_http_only_cookie(api: Api) -> None:
    r = sign_in(api, token=api.admin_token)
    assert r.status_code == 201, r.text
    info = r.json()
    assert info["roles"] == {"default": "admin"} and info["platform_admin"] is True
    assert info["csrf_token"] and api.admin_token not in r.text
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("edgeplane_session=")
    for attribute in ("HttpOnly", "SameSite=strict", "Path=/", "Max-Age=43200"):
        assert attribute.lower() in cookie.lower(), cookie
    assert "secure" not in cookie.lower()  # plain HTTP here; set on https
    # The cookie alone reads.
    assert api.client.get(DOMAINS).status_code == 200
    assert api.client.get(SESSION).json()["token_id"] == info["token_id"]


def test_writes_with_the_cookie_need_the_csrf_token(api: Api) -> None:
    sign_in(api, token=api.admin_token)
    body = {"domain": "csrf.example.com"}
    r = api.client.post(DOMAINS, json=body)
    assert r.status_code == 403, r.text
    assert r.json()["field"] == "X-CSRF-Token"
    r = api.client.post(DOMAINS, json=body, headers={"X-CSRF-Token": "forged"})
    assert r.status_code == 403
    assert api.get(f"{DOMAINS}/csrf.example.com").status_code == 404  # nothing was created
    r = api.client.post(DOMAINS, json=body, headers={"X-CSRF-Token": csrf(api)})
    assert r.status_code == 201, r.text


def test_a_viewer_session_reads_and_cannot_write(api: Api) -> None:
    sign_in(api, token=api.token("viewer"))
    assert api.client.get(DOMAINS).status_code == 200
    r = api.client.post(
        DOMAINS, json={"domain": "v.example.com"}, headers={"X-CSRF-Token": csrf(api)}
    )
    assert r.status_code == 403, r.text
    assert "viewer" in r.json()["detail"]


def test_no_session_answers_204_and_a_bad_sign_in_401(api: Api) -> None:
    r = api.client.get(SESSION)
    assert r.status_code == 204
    r = sign_in(api, token="ep_not-a-token")
    assert r.status_code == 401 and "ep_not-a-token" not in r.text
    assert "set-cookie" not in r.headers
    api.client.cookies.set("edgeplane_session", "made-up")
    r = api.client.get(SESSION)
    assert r.status_code == 204
    assert 'edgeplane_session=""' in r.headers["set-cookie"]  # the stale cookie is cleared
    assert api.client.get(DOMAINS).status_code == 401


def test_edge_and_metrics_tokens_cannot_sign_in(api: Api) -> None:
    for scope in ("edge", "metrics"):
        token = api.post("/api/v1/tokens", json={"name": scope, "scope": scope}).json()["token"]
        r = sign_in(api, token=token)
        assert r.status_code == 403, r.text


def test_sign_in_body_is_one_way_or_the_other(api: Api) -> None:
    r = sign_in(api)
    assert r.status_code == 422 and "give a token" in r.text
    r = sign_in(api, token=api.admin_token, login="alice", password=PASSWORD)
    assert r.status_code == 422 and "not both" in r.text
    r = sign_in(api, token=api.admin_token, extra=1)
    assert r.status_code == 422 and r.json()["field"] == "extra"


def test_revoking_the_token_ends_its_sessions(api: Api) -> None:
    token = api.token("editor")
    info = sign_in(api, token=token).json()
    assert api.client.get(DOMAINS).status_code == 200
    assert api.delete(f"/api/v1/tokens/{info['token_id']}").status_code == 200
    r = api.client.get(DOMAINS)
    assert r.status_code == 401 and "revoked" in r.json()["detail"]
    assert api.client.get(SESSION).status_code == 204


def test_an_expired_session_is_over(api: Api) -> None:
    sign_in(api, token=api.admin_token)
    with api.db.engine.begin() as conn:
        conn.execute(update(SessionRow).values(expires_at=utcnow() - timedelta(seconds=1)))
    r = api.client.get(DOMAINS)
    assert r.status_code == 401 and "ended" in r.json()["detail"]


def test_sign_out_ends_the_session(api: Api) -> None:
    sign_in(api, token=api.admin_token)
    token = csrf(api)
    assert api.client.delete(SESSION).status_code == 403  # CSRF needed here too
    r = api.client.delete(SESSION, headers={"X-CSRF-Token": token})
    assert r.status_code == 204
    assert 'edgeplane_session=""' in r.headers["set-cookie"]
    assert api.client.get(DOMAINS).status_code == 401


def test_a_login_signs_in_with_its_password_and_roles(api: Api) -> None:
    r = api.post(
        LOGINS, json={"name": "alice", "password": PASSWORD, "roles": {"default": "viewer"}}
    )
    assert r.status_code == 201, r.text
    login = r.json()
    assert login["roles"] == {"default": "viewer"} and PASSWORD not in r.text
    assert [x["name"] for x in api.get(LOGINS).json()] == ["alice"]
    r = sign_in(api, login="alice", password="wrong password!")
    assert r.status_code == 401 and r.json()["detail"] == "unknown login name or wrong password"
    r = sign_in(api, login="nobody", password=PASSWORD)
    assert r.status_code == 401 and r.json()["detail"] == "unknown login name or wrong password"
    r = sign_in(api, login="alice", password=PASSWORD)
    assert r.status_code == 201, r.text
    assert r.json()["login"] == "alice" and r.json()["roles"] == {"default": "viewer"}
    assert api.client.get(DOMAINS).status_code == 200
    # Deleting the login ends its sessions.
    assert api.delete(f"{LOGINS}/alice").status_code == 204
    assert api.client.get(DOMAINS).status_code == 401
    assert sign_in(api, login="alice", password=PASSWORD).status_code == 401
    assert api.get(LOGINS).json() == []


def test_login_input_is_checked_and_never_echoed(api: Api) -> None:
    r = api.post(LOGINS, json={"name": "bob", "password": "short", "roles": {"default": "viewer"}})
    assert r.status_code == 422
    assert r.json()["errors"] == [
        {"field": "password", "reason": "must be at least 10 characters long"}
    ]
    assert "short" not in r.json()["detail"]
    r = api.post(
        LOGINS, json={"name": "Bob!", "password": PASSWORD, "roles": {"default": "viewer"}}
    )
    assert r.status_code == 422 and r.json()["field"] == "name"
    r = api.post(LOGINS, json={"name": "bob", "password": PASSWORD, "roles": {"nope": "viewer"}})
    assert r.status_code == 422 and r.json()["field"] == "roles.nope"
    assert api.get(LOGINS).json() == []
    ok = {"name": "bob", "password": PASSWORD, "roles": {"default": "editor"}}
    assert api.post(LOGINS, json=ok).status_code == 201
    r = api.post(LOGINS, json=ok)
    assert r.status_code == 409 and r.json()["field"] == "name"


def test_only_admins_create_logins(api: Api) -> None:
    editor = api.token("editor")
    body = {"name": "eve", "password": PASSWORD, "roles": {"default": "admin"}}
    r = api.post(LOGINS, token=editor, json=body)
    assert r.status_code == 403, r.text
    assert api.get(LOGINS).json() == []


def test_failed_sign_ins_of_a_login_are_throttled(api: Api) -> None:
    api.post(LOGINS, json={"name": "carol", "password": PASSWORD, "roles": {"default": "viewer"}})
    for _ in range(5):
        assert sign_in(api, login="carol", password="not the password").status_code == 401
    r = sign_in(api, login="carol", password=PASSWORD)  # even the right one, for a while
    assert r.status_code == 429, r.text
    assert int(r.headers["retry-after"]) > 0
    # Tokens are not throttled (nothing to guess), nor other logins from elsewhere.
    assert sign_in(api, token=api.admin_token).status_code == 201
