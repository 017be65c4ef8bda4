"""PostgreSQL through the whole backup path (issue 16's point-in-time acceptance): a control
plane's database backed up (a base backup, then an incremental of the WAL streamed since),
encrypted and stored, verified by a scratch restore, and ``edgeplane restore --at T`` onto a
fresh machine between two changes keeps the first and not the second."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from edgeplane.backup import create, pg_backup, restore, schedule
from edgeplane.backup.errors import BackupError
from edgeplane.secrets import SecretBox
from edgeplane.services import datacenters
from edgeplane.settings import Settings
from edgeplane.store import migrate
from edgeplane.store.actor import LOCAL
from edgeplane.store.db import Database
from edgeplane.store.tables import utcnow
from pgcluster import PostgresCluster, find_pg_bin

pytestmark = pytest.mark.integration


@pytest.fixture
def work() -> Iterator[Path]:
    """A folder the ``postgres`` user can reach (restored data directories live below it)."""
    if find_pg_bin() is None:
        if os.environ.get("CI") == "true":
            pytest.fail("PostgreSQL is not installed; scripts/bootstrap --with-test installs it")
        pytest.skip("PostgreSQL is not installed (run scripts/bootstrap --with-test)")
    path = Path(tempfile.mkdtemp(prefix="pitr-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def add_dc(db: Database, n: int) -> None:
    with db.transaction(LOCAL, "default") as tx:
        datacenters.create(
            tx,
            {
                "id": f"dc-{n}",
                "name": f"DC {n}",
                "location": "us-east",
                "tier": 3,
                "capacity": {"cpu": 8, "memory": 32, "storage": 100},
            },
        )


def dcs(url: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return set(conn.execute(sa.text("SELECT id FROM data_centers")).scalars())
    finally:
        engine.dispose()


def test_point_in_time_restore_keeps_the_first_change_not_the_second(work: Path) -> None:
    source = PostgresCluster(work / "source")
    source.start()
    try:
        url = source.create_database("cp")
        home = work / "home"
        home.mkdir()
        settings = Settings(
            home=home,
            database_url=url,
            backup_wal_dir=str(work / "wal"),
            backup_targets=f"file://{work / 'offsite'}?name=offsite",
            backup_schedule="on",
        )
        db = Database(url, secrets=SecretBox.from_settings(settings))
        try:
            migrate.upgrade(db.engine)
            full = create.create(db, settings, "full")
            assert full is not None and full.manifest.engine == "postgresql"
            assert full.locations == ["local", "offsite"]
            add_dc(db, 1)
            time.sleep(1.2)
            between = utcnow()
            time.sleep(1.2)
            add_dc(db, 2)
            incr = create.create(db, settings, "incremental")
            assert incr is not None and incr.manifest.kind == "incremental"
            assert incr.manifest.chain == [full.manifest.id]
            report = schedule.verify_one(db, settings, incr.manifest.id)
            assert report["ok"], report
        finally:
            pg_backup.stop_archivers()
            db.dispose()
        key = work / "backup.key"
        shutil.copyfile(home / "backup.key", key)
    finally:
        source.stop()  # the source is gone: what follows has the off-site copies only

    fresh = Settings(
        home=work / "new-home", backup_targets=f"file://{work / 'offsite'}?name=offsite"
    )
    restored_dir = work / "restored"
    done = restore.restore(fresh, at=between, pg_data=restored_dir / "data", key_file=key)
    assert done.chain == [full.manifest.id, incr.manifest.id]
    assert any(n.startswith("recovered to") for n in done.notes), done.notes
    # Nothing is overwritten: the same data directory again is refused.
    with pytest.raises(BackupError, match="not empty"):
        restore.restore(fresh, at=between, pg_data=restored_dir / "data", key_file=key, force=True)
    started = PostgresCluster(restored_dir)
    started.start()
    try:
        assert dcs(started.url("cp")) == {"dc-1"}
    finally:
        started.stop()

    latest_dir = work / "latest"
    restore.restore(fresh, pg_data=latest_dir / "data", key_file=key, force=True)
    started = PostgresCluster(latest_dir)
    started.start()
    try:
        assert dcs(started.url("cp")) == {"dc-1", "dc-2"}
    finally:
        started.stop()
