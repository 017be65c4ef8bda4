"""Shared fixtures: a fresh database per test on SQLite and on PostgreSQL, and the API."""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from edgeplane.api.app import create_app
from edgeplane.model.enums import Role
from edgeplane.routing.geoip import GeoLocator
from edgeplane.secrets import SecretBox
from edgeplane.services import access
from edgeplane.settings import Settings
from edgeplane.store.actor import LOCAL
from edgeplane.store.db import Database
from edgeplane.store.migrate import upgrade
from pgcluster import PostgresCluster, find_pg_bin

TEMPLATE = "edgeplane_template"
# The key of every test database's secrets; the API fixture's home holds it as its secret.key,
# so that an embedded client on that home (SecretBox.from_settings) uses the same key.
TEST_SECRET_KEY = "edgeplane test secrets"
TEST_SECRETS = SecretBox(TEST_SECRET_KEY)
_counter = itertools.count()


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PostgresCluster]:
    if find_pg_bin() is None:
        if os.environ.get("CI") == "true":
            pytest.fail("PostgreSQL is not installed; scripts/bootstrap --with-test installs it")
        pytest.skip("PostgreSQL is not installed (run scripts/bootstrap --with-test)")
    # A directory of its own, not pytest's: another pytest run on this machine prunes old
    # pytest temp directories, which would pull the data directory from under the server.
    base = Path(tempfile.mkdtemp(prefix="edgeplane-pg-"))
    cluster = PostgresCluster(base)
    cluster.start()
    url = cluster.create_database(TEMPLATE)
    db = Database.for_tests(url)
    upgrade(db.engine)
    db.dispose()
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def locator() -> Iterator[GeoLocator]:
    loc = GeoLocator()
    yield loc
    loc.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A freshly migrated, empty database, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'edgeplane.db'}"
        db = Database(url)
        upgrade(db.engine)
        db.dispose()
        yield url
        return
    cluster: PostgresCluster = request.getfixturevalue("pg_cluster")
    name = f"t{os.getpid()}_{next(_counter)}"
    url = cluster.create_database(name, template=TEMPLATE)
    yield url
    cluster.drop_database(name)


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database.for_tests(database_url, secrets=TEST_SECRETS)
    yield database
    database.dispose()


@dataclass
class Api:
    """A test client on the real app and database, holding the admin token."""

    client: TestClient
    db: Database
    admin_token: str
    tmp: Path

    def headers(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token or self.admin_token}"}

    def call(self, method: str, path: str, token: str | None = None, **kw: Any) -> Any:
        return self.client.request(method, path, headers=self.headers(token), **kw)

    def get(self, path: str, **kw: Any) -> Any:
        return self.call("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> Any:
        return self.call("POST", path, **kw)

    def patch(self, path: str, **kw: Any) -> Any:
        return self.call("PATCH", path, **kw)

    def delete(self, path: str, **kw: Any) -> Any:
        return self.call("DELETE", path, **kw)

    def token(self, role: Role | str, project: str = "default") -> str:
        with self.db.transaction(LOCAL, "default") as tx:
            issued = access.create_token(
                tx, {"name": f"{role}-token", "roles": {project: str(role)}}
            )
        return issued.token


@pytest.fixture
def api(db: Database, tmp_path: Path, locator: GeoLocator) -> Iterator[Api]:
    settings = Settings(home=tmp_path / "home", database_url=db.url)
    settings.home.mkdir(parents=True, exist_ok=True)
    settings.secret_key_path.write_text(TEST_SECRET_KEY + "\n")
    token = access.ensure_admin_token(db, tmp_path / "home" / "admin-token")
    app = create_app(settings, db, locator=locator)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Api(client=client, db=db, admin_token=token, tmp=tmp_path)
