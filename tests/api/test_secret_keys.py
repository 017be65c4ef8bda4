"""The keyring of secrets at rest over HTTP (real SQLite and PostgreSQL): a rotation in four
steps (add, promote, re-encrypt through the runner's job, retire) keeps every stored secret
readable and the derived values unchanged; the job is batched and resumes where it stopped;
retiring a key that a value still needs is refused. Reads of secrets' plain text (a
certificate's private key) are audited; the engines' own decryption is not.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from conftest import Api
from edgeplane.api.app import create_app
from edgeplane.routing.geoip import GeoLocator
from edgeplane.secrets import Keyring, SecretBox
from edgeplane.services import access, secret_keys
from edgeplane.services.runner import Runner
from edgeplane.settings import Settings
from edgeplane.snapshot.load import load_state
from edgeplane.snapshot.tickets import TICKET_SECRET
from edgeplane.store.actor import LOCAL
from edgeplane.store.db import Database
from secret_keys import TEST_SECRET_KEY

INV = "/api/v1/infrastructure"
S = "/api/v1/secrets"
DOMAINS = ("a.test", "b.test", "c.test")


def ok(r: Any, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json() if status != 204 else None


def problem(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    doc: dict[str, Any] = r.json()
    return doc


@pytest.fixture
def keyed(database_url: str, tmp_path: Path, locator: GeoLocator) -> Iterator[Api]:
    """The API on a keyring file ($EDGEPLANE_HOME/secret.key), which the API can change."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "secret.key").write_text(TEST_SECRET_KEY + "\n")
    settings = Settings(home=home, database_url=database_url)
    db = Database.for_tests(database_url, secrets=SecretBox.from_settings(settings))
    token = access.ensure_admin_token(db, home / "admin-token")
    # background work runs (no job here: the tests run the re-encryption themselves)
    app = create_app(settings, db, locator=locator, runner=Runner([]))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Api(client=client, db=db, admin_token=token, tmp=tmp_path)
    db.dispose()


def every_value(db: Database) -> list[str]:
    return [v for col in secret_keys.encrypted_columns() for _, v in secret_keys._rows(db, col)]


def private_keys(api: Api) -> dict[str, str]:
    return {d: ok(api.get(f"{INV}/ssl/{d}/private-key"))["key_pem"] for d in DOMAINS}


class StopAfter(threading.Event):
    """A runner's ``stopping`` that is set after ``n`` looks: a job interrupted mid-way."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n

    def is_set(self) -> bool:
        self.n -= 1
        return self.n < 0


def test_a_key_rotation_reencrypts_every_secret_and_retires_the_old_key(keyed: Api) -> None:
    api, db = keyed, keyed.db
    for d in DOMAINS:
        ok(api.post(f"{INV}/domains", json={"domain": d, "dnssec": d == "a.test"}), 201)
        ok(api.post(f"{INV}/ssl/{d}", json={"type": "internal"}), 201)
    channel = {"kind": "webhook", "url": "http://127.0.0.1:9/hook", "secret": "s3cret-value"}
    ok(api.post("/api/v1/alerts/channels", json={"id": "ops", "name": "Ops", "config": channel}),
       201)  # fmt: skip
    box = db.secrets
    assert box is not None
    tickets, digest = box.derive(TICKET_SECRET), box.derive("iac-digest")
    keys = private_keys(api)

    first = ok(api.get(f"{S}/status"))
    old = first["primary"]
    assert first["source"] == "file" and [k["id"] for k in first["keys"]] == [old]
    assert first["unreadable"] == 0 and first["keys"][0]["values"] == first["values"]
    for column in (
        "certificates.key_encrypted",
        "secrets.value_encrypted",
        "domains.dnssec_key_encrypted",
        "notification_channels.secrets_encrypted",
    ):
        assert first["columns"][column].get(old), column  # fmt: skip
    total = first["values"]

    # 1. add: a secondary key; nothing moves to it
    added = ok(api.post(f"{S}/keys"), 201)
    new = added["id"]
    assert [(k["id"], k["primary"], k["values"]) for k in added["status"]["keys"]] == [
        (old, True, total),
        (new, False, 0),
    ]
    assert "derive=" in (api.tmp / "home" / "secret.key").read_text()
    problem(api.post(f"{S}/keys/nope/primary"), 404)

    # 2. promote: new values go under the new key, old ones still decrypt
    promoted = ok(api.post(f"{S}/keys/{new}/primary"))
    assert promoted["primary"] == new
    ok(api.post(f"{INV}/ssl/a.test", json={"type": "internal"}), 201)
    keys["a.test"] = ok(api.get(f"{INV}/ssl/a.test/private-key"))["key_pem"]
    split = {k["id"]: k["values"] for k in ok(api.get(f"{S}/status"))["keys"]}
    assert split[new] == 1 and split[old] == total
    assert "re-encrypt them first" in problem(api.delete(f"{S}/keys/{old}"), 409)["detail"]
    assert "primary" in problem(api.delete(f"{S}/keys/{new}"), 409)["detail"]

    # 3. re-encrypt: a job of the runner; one on a replica with another primary waits
    job = ok(api.post(f"{S}/reencrypt"), 202)
    assert job["status"] == "queued" and job["target_key"] == new
    assert ok(api.post(f"{S}/reencrypt"), 202)["id"] == job["id"]  # one at a time
    stale = Database.for_tests(db.url, secrets=SecretBox(TEST_SECRET_KEY))
    try:
        assert secret_keys.Reencryptor(stale)() == 0
    finally:
        stale.dispose()
    waiting = ok(api.get(f"{S}/status"))["reencryption"]
    assert waiting["status"] == "waiting" and new in waiting["message"]
    problem(api.delete(f"{S}/keys/{old}"), 409)  # not while a job is on

    stamp = ok(api.get(f"{INV}/domains/a.test"))["updated_at"]
    # batches of 2, interrupted after a few looks, resumed from where it was
    runner = secret_keys.Reencryptor(db, batch=2)
    moved = runner(StopAfter(2))
    mid = ok(api.get(f"{S}/status"))
    assert mid["reencryption"]["status"] == "running"
    assert 0 < mid["reencryption"]["reencrypted"] == moved < total
    moved += runner(threading.Event())
    done = ok(api.get(f"{S}/status"))
    assert done["reencryption"]["status"] == "done" and moved == total
    assert done["reencryption"]["unchanged"] == 1  # the certificate made after the promotion
    assert {k["id"]: k["values"] for k in done["keys"]} == {new: total + 1, old: 0}
    assert runner() == 0  # nothing left to do
    assert ok(api.get(f"{INV}/domains/a.test"))["updated_at"] == stamp  # it did not change

    # 4. retire: the old key leaves the keyring, derived values stay, everything reads
    retired = ok(api.delete(f"{S}/keys/{old}"))
    assert [k["id"] for k in retired["keys"]] == [new] and retired["unreadable"] == 0
    ring = Keyring.parse((api.tmp / "home" / "secret.key").read_text())
    assert ring.ids == [new] and ring.derive_id == old
    assert box.derive(TICKET_SECRET) == tickets and box.derive("iac-digest") == digest
    assert private_keys(api) == keys
    fresh = SecretBox((api.tmp / "home" / "secret.key").read_text())
    assert all(fresh.key_of(v) == new for v in every_value(db))
    for value in every_value(db):
        fresh.decrypt(value)
    assert SecretBox(TEST_SECRET_KEY).key_of(every_value(db)[0]) is None
    with db.read(LOCAL, "default") as tx:
        load_state(tx.session, fresh)  # the snapshot's own decryption of every key

    events = ok(api.get("/api/v1/audit?kind=secret_key&include_global=true"))["items"]
    assert [e["action"] for e in reversed(events)] == ["add", "promote", "reencrypt", "retire"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_keyring_from_the_environment_is_changed_there(api: Api) -> None:
    status = ok(api.get(f"{S}/status"))
    assert status["source"] == "env" and status["unreadable"] == 0
    assert "EDGEPLANE_SECRET_KEY" in problem(api.post(f"{S}/keys"), 409)["detail"]
    editor = api.token("editor")
    problem(api.get(f"{S}/status", token=editor), 403)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_reading_a_private_key_is_audited_and_engines_are_not(api: Api) -> None:
    ok(api.post(f"{INV}/domains", json={"domain": "shop.test"}), 201)
    ok(api.post(f"{INV}/ssl/shop.test", json={"type": "internal"}), 201)
    doc = ok(api.get(f"{INV}/ssl/shop.test/private-key"))
    assert doc["key_pem"].startswith("-----BEGIN") and doc["domain"] == "shop.test"
    # an editor cannot; a scoped admin needs certificates:reveal, not just read
    problem(api.get(f"{INV}/ssl/shop.test/private-key", token=api.token("editor")), 403)
    reader = ok(
        api.post(
            "/api/v1/tokens",
            json={"name": "r", "roles": {"default": "admin"}, "scopes": ["certificates:read"]},
        ),
        201,
    )["token"]
    assert (
        problem(api.get(f"{INV}/ssl/shop.test/private-key", token=reader), 403)["missing_scope"]
        == "certificates:reveal"
    )
    revealer = ok(
        api.post(
            "/api/v1/tokens",
            json={"name": "exporter", "roles": {"default": "admin"},
                  "scopes": ["certificates:reveal"]},
        ),
        201,
    )  # fmt: skip
    revision = ok(api.get("/api/v1/revision"))["revision"]
    ok(api.get(f"{INV}/ssl/shop.test/private-key", token=revealer["token"]))
    problem(api.get(f"{INV}/ssl/nope.test/private-key"), 404)
    # the engines decrypt without an event (a snapshot build reads every key)
    with api.db.read(LOCAL, "default") as tx:
        load_state(tx.session, tx.secrets)
    events = ok(api.get("/api/v1/audit?kind=certificate"))["items"]
    reveals = [e for e in events if e["action"] == "reveal"]
    assert [e["actor"] for e in reveals] == [
        f"exporter ({revealer['id']})",
        "admin (" + ok(api.get("/api/v1/whoami"))["token_id"] + ")",
    ]
    assert reveals[0]["after"] == {"field": "private_key", "domain": "shop.test"}
    assert "PRIVATE KEY" not in str(events)
    # a read changes nothing: the revision stays
    assert ok(api.get("/api/v1/revision"))["revision"] == revision
