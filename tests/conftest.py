"""Shared fixtures: a fresh database per test on SQLite and on PostgreSQL, and the API; and
the session's end: no process of the run may be left running (see ``leftovers.py``).

Each run gets a temporary root of its own (``ep-*`` in the system's temporary
folder): it is ``TMPDIR`` for the run and its children, and the run's working directory, so
that everything the tests start lives under it; every process inherits ``_EDGEPLANE_RUN``
(the run's id). pytest's own ``basetemp`` stays where it was. When the session ends, after
every fixture's teardown, whatever the run started and did not stop is listed (pid, command
line, working directory, why it counts), killed, and the run fails.
"""

from __future__ import annotations

import itertools
import json
import multiprocessing.util
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

# A pytest-xdist worker finds COLUMNS=80 in its environment, as if it printed to a terminal of
# 80 columns: the CLI's tables (made when edgeplane.cli is imported, below) would wrap there.
# A serial run's output is not a terminal and takes the width it needs; so does a worker's.
if "PYTEST_XDIST_WORKER" in os.environ:
    os.environ.pop("COLUMNS", None)
    os.environ.pop("LINES", None)

from click.testing import Result
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from edgeplane.api.app import create_app
from edgeplane.cli.main import app as cli_app
from edgeplane.model.enums import Role
from edgeplane.routing.geoip import GeoLocator
from edgeplane.services import access
from edgeplane.settings import Settings
from edgeplane.store.actor import LOCAL
from edgeplane.store.db import Database
from edgeplane.store.migrate import upgrade
from leftovers import MARKER, Owner, ancestors, start_ticks
from pgcluster import PostgresCluster, find_pg_bin
from secret_keys import TEST_SECRET_KEY, TEST_SECRETS

TEMPLATE = "edgeplane_template"
_counter = itertools.count()


@dataclass
class Run:
    """This run's own directory, id and what it changed, to be undone at the end."""

    root: Path
    cwd: str
    environ: dict[str, str | None]
    tempdir: str | None
    basetemp: list[Path] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.root.name

    def owner(self) -> Owner:
        me = os.getpid()
        return Owner(
            marker=self.id,
            roots=[self.root, *self.basetemp],
            since=start_ticks(me),
            exclude=frozenset(ancestors(me)),
        )


RUN = pytest.StashKey[Run]()


def _xdist_controller(config: pytest.Config) -> bool:
    """This process hands tests out to pytest-xdist workers (``-n``) and runs none itself."""
    return bool(getattr(config.option, "numprocesses", None)) and not hasattr(config, "workerinput")


def pytest_configure(config: pytest.Config) -> None:
    if _xdist_controller(config):
        return  # it runs no test: each of its workers makes a run of its own
    # A short name: a node's sockets (nginx's status.sock, PowerDNS's control socket) lie some
    # 50 characters below the temporary folders that tests and benches make in it, and a Unix
    # socket's path holds at most 107.
    root = Path(tempfile.mkdtemp(prefix="ep-"))
    root.chmod(0o755)  # nginx workers (www-data under root) reach what tests put below it
    changes = {
        MARKER: root.name,
        "TMPDIR": str(root),
        # pytest's basetemp stays in the system's temporary folder, where it always was
        "PYTEST_DEBUG_TEMPROOT": os.environ.get("PYTEST_DEBUG_TEMPROOT") or tempfile.gettempdir(),
    }
    run = Run(
        root=root,
        cwd=os.getcwd(),
        environ={k: os.environ.get(k) for k in changes},
        tempdir=tempfile.tempdir,
    )
    config.stash[RUN] = run
    # multiprocessing (bundle builds in the API tests) makes its own temporary folder once per
    # process and removes it at exit, after the run's root is gone: make it outside the root.
    multiprocessing.util.get_temp_dir()
    os.environ.update(changes)
    tempfile.tempdir = str(root)
    os.chdir(root)


@pytest.fixture(scope="session", autouse=True)
def _run_basetemp(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> None:
    """pytest's basetemp is one of the run's own directories."""
    request.config.stash[RUN].basetemp.append(tmp_path_factory.getbasetemp())


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """After every session fixture's teardown: nothing of the run may still be running."""
    run = session.config.stash.get(RUN, None)
    if run is None:
        return
    killed = run.owner().kill()
    if not killed:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.ensure_newline()
        reporter.write_sep("=", f"{len(killed)} processes left running by the run", red=True)
        for p in killed:
            reporter.write_line(p.describe())
        reporter.write_line("(killed; the run fails: a test or fixture must stop what it starts)")
        reporter.stats.setdefault("leftover processes", []).extend(killed)
    if session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED  # (an interrupted run stays so)


def pytest_unconfigure(config: pytest.Config) -> None:
    run = config.stash.get(RUN, None)
    if run is None:
        return
    os.chdir(run.cwd)
    tempfile.tempdir = run.tempdir
    for name, value in run.environ.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    shutil.rmtree(run.root, ignore_errors=True)


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


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated, empty SQLite database, copied for each test (a copy takes 1 ms, running the
    migrations about 180 ms); PostgreSQL's tests copy ``TEMPLATE`` likewise."""
    path = tmp_path_factory.mktemp("sqlite-template") / "edgeplane.db"
    db = Database(f"sqlite:///{path}")
    upgrade(db.engine)
    db.dispose()  # the last connection closed: the WAL is checkpointed into the file
    for suffix in ("-wal", "-shm"):
        assert not path.with_name(path.name + suffix).exists(), f"{suffix} left by the template"
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A freshly migrated, empty database, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        path = tmp_path / "edgeplane.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
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
    # Nodes here are the tests' own heartbeats: a node goes offline by an unhealthy beat, never
    # by a machine that stalls for the 5 s default between two steps of a test (seen once in CI:
    # a node registered first had timed out before the deploy that needed it).
    settings = Settings(home=tmp_path / "home", database_url=db.url, node_timeout_s=60.0)
    settings.home.mkdir(parents=True, exist_ok=True)
    settings.secret_key_path.write_text(TEST_SECRET_KEY + "\n")
    token = access.ensure_admin_token(db, tmp_path / "home" / "admin-token")
    app = create_app(settings, db, locator=locator)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Api(client=client, db=db, admin_token=token, tmp=tmp_path)


# The CLI in process (Typer's runner), embedded on the test app's database -----------------


class Cli:
    def __init__(self) -> None:
        self.runner = CliRunner()

    def run(self, *args: str, code: int = 0) -> Result:
        result = self.runner.invoke(cli_app, list(args), catch_exceptions=False)
        assert result.exit_code == code, (args, result.exit_code, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr
        return result

    def json(self, *args: str, code: int = 0) -> Any:
        return json.loads(self.run(*args, "--json", code=code).stdout)

    def fails(self, *args: str, code: int) -> str:
        result = self.run(*args, code=code)
        assert result.stdout == ""
        return result.stderr


@pytest.fixture
def cli(api: Api, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cli]:
    """The CLI embedded on the test app's database."""
    from edgeplane.sdk import embedded

    monkeypatch.setenv("EDGEPLANE_HOME", str(api.tmp / "home"))
    monkeypatch.setenv("EDGEPLANE_DATABASE_URL", api.db.url)
    monkeypatch.setenv("COLUMNS", "200")
    for name in ("EDGEPLANE_URL", "EDGEPLANE_TOKEN", "EDGEPLANE_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    yield Cli()
    app_ = embedded._apps.pop(api.db.url, None)
    if app_ is not None:
        app_.state.db.dispose()
