"""Backups through the REST API and ``edgeplane restore``: made, listed, verified by restoring
them, restored onto a fresh home with the same state and tokens; a damaged copy found by
verification (and alerted), refused by restore; a wrong key refused; a live home not
overwritten without ``--force``. SQLite (PostgreSQL's base backups and point in time are
tests/integration/test_backup_pitr.py)."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from conftest import Api
from edgeplane.api.app import create_app
from edgeplane.backup import restore
from edgeplane.backup.errors import BackupError
from edgeplane.iac import service as iac
from edgeplane.services import alert_engine
from edgeplane.settings import Settings
from edgeplane.store.actor import LOCAL
from edgeplane.store.db import Database
from secret_keys import TEST_SECRET_KEY, TEST_SECRETS

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
B = "/api/v1/backups"
INFRA = "/api/v1/infrastructure"


@pytest.fixture
def bapi(api: Api, tmp_path: Path) -> Api:
    """The API with an off-site target (a second directory) besides the home's."""
    app = api.client.app
    app.state.settings = replace(
        app.state.settings,
        backup_targets=f"file://{tmp_path / 'offsite'}?name=offsite",
        backup_schedule="off",
    )
    return api


def ok(r: Any, status: int = 200) -> Any:
    assert r.status_code == status, (r.status_code, r.text)
    return r.json() if r.content else None


def some_state(api: Api, n: int) -> None:
    ok(api.post(f"{INFRA}/domains", json={"domain": f"shop{n}.example.com"}), 201)
    dc = {"id": f"dc-{n}", "name": f"DC {n}", "location": "us-east", "tier": 3,
          "capacity": {"cpu": 64, "memory": 256, "storage": 2000}}  # fmt: skip
    ok(api.post(f"{INFRA}/datacenters", json=dc), 201)


def fresh(tmp_path: Path, name: str, **kw: Any) -> Settings:
    return Settings(
        home=tmp_path / name, backup_targets=f"file://{tmp_path / 'offsite'}?name=offsite", **kw
    )


def key_file(api: Api) -> Path:
    path = api.tmp / "backup.key.copy"
    path.write_text((api.tmp / "home" / "backup.key").read_text())
    return path


def exported(db: Database, settings: Settings) -> dict[str, Any]:
    return iac.export(db, LOCAL, "default", settings)


def test_made_listed_verified_and_restored_onto_a_fresh_home(bapi: Api, tmp_path: Path) -> None:
    some_state(bapi, 1)
    full = ok(bapi.post(B, json={"kind": "full"}), 201)
    assert full["kind"] == "full" and full["locations"] == ["local", "offsite"]
    some_state(bapi, 2)
    incr = ok(bapi.post(B, json={"kind": "incremental"}), 201)
    assert incr["kind"] == "incremental" and incr["chain"] == [full["id"]]
    assert incr["size_bytes"] < full["size_bytes"]
    config = ok(bapi.post(B, json={"kind": "config"}), 201)
    assert bapi.post(B, json={"kind": "config"}).status_code == 204  # nothing changed
    listed = ok(bapi.get(B))["items"]
    assert [b["id"] for b in listed] == [config["id"], incr["id"], full["id"]]

    report = ok(bapi.post(f"{B}/{incr['id']}/verify"))
    assert report["ok"], report
    checks = {c["check"]: c for c in report["checks"]}
    assert set(checks) >= {"copy at local", "copy at offsite", "integrity", "schema revision",
                           "revision", "row counts", "secrets decrypt"}  # fmt: skip
    assert checks["secrets decrypt"]["detail"].startswith(("2 of 2", "4 of 4")), checks
    assert ok(bapi.get(f"{B}/{incr['id']}"))["verify_ok"] is True
    assert ok(bapi.post(f"{B}/{config['id']}/verify"))["ok"]

    before = exported(bapi.db, Settings(home=tmp_path / "home", database_url=bapi.db.url))
    # A fresh machine: nothing but the off-site copies and the backup key.
    target = fresh(tmp_path, "new-home")
    done = restore.restore(target, key_file=key_file(bapi))
    assert done.backup == incr["id"] and done.chain == [full["id"], incr["id"]]
    restored = Database(target.effective_database_url, secrets=TEST_SECRETS)
    try:
        assert exported(restored, target) == before
        assert (target.home / "secret.key").read_text() == TEST_SECRET_KEY + "\n"
        token = (target.home / "admin-token").read_text().strip()
        assert token == bapi.admin_token
        app = create_app(target, restored)
        with TestClient(app) as client:
            r = client.get(f"{INFRA}/domains", headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 200
            assert {d["domain"] for d in r.json()["domains"]} == {
                "shop1.example.com",
                "shop2.example.com",
            }
    finally:
        restored.dispose()


def flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x40
    path.write_bytes(bytes(data))


def test_a_damaged_copy_is_found_alerted_and_refused(bapi: Api, tmp_path: Path) -> None:
    some_state(bapi, 1)
    full = ok(bapi.post(B, json={"kind": "full"}), 201)
    flip_a_byte(tmp_path / "offsite" / f"{full['id']}.backup")
    report = ok(bapi.post(f"{B}/{full['id']}/verify"))
    assert not report["ok"]
    failed = [c for c in report["checks"] if not c["ok"]]
    assert [c["check"] for c in failed] == ["copy at offsite"], report
    assert "damaged" in failed[0]["detail"] and "SHA-256" in failed[0]["detail"]
    assert ok(bapi.get(f"{B}/{full['id']}"))["verify_ok"] is False

    alert_engine.Engine(bapi.db).evaluate()
    alerts = ok(bapi.get("/api/v1/alerts"))
    firing = [a for a in alerts if a["rule"] == "backup-verification-failed"]
    assert firing and firing[0]["severity"] == "critical" and firing[0]["state"] == "firing"

    # Restore from the off-site copy alone (a fresh machine): refused, nothing written.
    target = fresh(tmp_path, "new-home")
    with pytest.raises(BackupError, match=r"damaged: its SHA-256 does not match its manifest"):
        restore.restore(target, key_file=key_file(bapi))
    assert not (target.home / "edgeplane.db").exists()
    assert not (target.home / "secret.key").exists()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_wrong_key_and_a_live_home_are_refused_and_nothing_is_overwritten(
    bapi: Api, tmp_path: Path
) -> None:
    some_state(bapi, 1)
    ok(bapi.post(B, json={"kind": "full"}), 201)
    target = fresh(tmp_path, "new-home")
    done = restore.restore(target, key_file=key_file(bapi))
    db_file = target.home / "edgeplane.db"
    before = digest(db_file)

    with pytest.raises(BackupError, match=r"holds a control plane's state.*--force"):
        restore.restore(target, key_file=key_file(bapi))
    wrong = tmp_path / "wrong.key"
    wrong.write_text("not the backup key\n")
    with pytest.raises(BackupError, match=r"made with another backup key \(key id [0-9a-f]{16}\)"):
        restore.restore(target, key_file=wrong, force=True)
    assert digest(db_file) == before
    assert not list(target.home.glob("before-restore-*"))

    again = restore.restore(target, key_file=key_file(bapi), force=True)
    assert again.moved_aside and Path(again.moved_aside, "edgeplane.db").is_file()
    assert again.backup == done.backup


def test_only_platform_admins_and_bad_input_named(bapi: Api) -> None:
    viewer = bapi.token("viewer")
    editor = bapi.token("editor")
    for token in (viewer, editor):
        assert bapi.get(B, token=token).status_code == 403
        assert bapi.post(B, token=token, json={"kind": "full"}).status_code == 403
    r = bapi.post(B, json={"kind": "weekly"})
    assert r.status_code == 422 and "kind" in r.text
    assert bapi.get(f"{B}/full-20261205T000000Z-abcdef").status_code == 404
    status = ok(bapi.get(f"{B}/status"))
    assert [t["name"] for t in status["targets"]] == ["local", "offsite"]
    assert status["schedule"] is False and status["key_id"] is None
