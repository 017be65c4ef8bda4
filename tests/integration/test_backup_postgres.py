"""PostgreSQL backups with PostgreSQL's own tools, on real clusters: a base backup restored as
it was; a replication role with a password (nothing more than the module asks of a server); a
point-in-time restore between two changes, and the newest WAL of a lost server (``.partial``);
target times outside what the backups cover, a gap in the WAL, a backup that does not match its
manifest; the WAL archiver falling behind across a server restart with no segment lost, and
starting a new chain after the server lost WAL it needed."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
import sqlalchemy as sa

from edgeplane.backup.errors import BackupError
from edgeplane.backup.pitr import restore_cluster, scratch_cluster
from edgeplane.backup.postgres import (
    base_backup,
    conninfo,
    format_lsn,
    parse_lsn,
    segment_name,
    segment_of,
    tool_env,
)
from edgeplane.backup.wal_archive import WalArchiver, switch_wal
from pgcluster import PostgresCluster, find_pg_bin

pytestmark = pytest.mark.integration


@pytest.fixture
def source() -> Iterator[PostgresCluster]:
    """A cluster of the test's own: the archiver holds a slot on it, and a test restarts it."""
    if find_pg_bin() is None:
        if os.environ.get("CI") == "true":
            pytest.fail("PostgreSQL is not installed; scripts/bootstrap --with-test installs it")
        pytest.skip("PostgreSQL is not installed (run scripts/bootstrap --with-test)")
    base = Path(tempfile.mkdtemp(prefix="pgsrc-"))
    cluster = PostgresCluster(base)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def work() -> Iterator[Path]:
    """The test's folder for backups, WAL and restored data directories; not pytest's
    tmp_path, whose ``pytest-of-root`` another pytest run resets to 0700, cutting the
    ``postgres`` user off a data directory below it."""
    path = Path(tempfile.mkdtemp(prefix="pgbk-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def archiver(source: PostgresCluster, work: Path) -> Iterator[WalArchiver]:
    wal = WalArchiver(source.admin_url, work / "wal")
    wal.start()
    try:
        yield wal
    finally:
        wal.stop()


def execute(cluster: PostgresCluster, *statements: str) -> None:
    with psycopg.connect(cluster.conninfo(), autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)  # type: ignore[arg-type]


def names(url: str, table: str = "site") -> list[str]:
    """The rows of a table, read through the SQLAlchemy URL the restore hands out."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [r[0] for r in conn.execute(sa.text(f"SELECT name FROM {table} ORDER BY id"))]
    finally:
        engine.dispose()


def incremental(archiver: WalArchiver, url: str, since: str, into: Path) -> tuple[Path, str]:
    """What the lead's daily incremental holds: the WAL since ``since``, up to now."""
    end = switch_wal(url)
    archiver.wait_for(end, timeout=30)
    into.mkdir(parents=True)
    for path in archiver.collect(since):
        shutil.copy2(path, into / path.name)
    return into, end


def received(cluster: PostgresCluster, timeout: float) -> None:
    """Wait until pg_receivewal has written all the WAL the server has inserted so far."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(cluster.conninfo(), autocommit=True) as conn:
        # the insert position: with synchronous_commit off, the write one may lag behind
        now = conn.execute("SELECT pg_current_wal_insert_lsn()").fetchone()
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT write_lsn >= %s::pg_lsn FROM pg_stat_replication"
                " WHERE application_name = 'pg_receivewal'",
                now,
            ).fetchone()
            if row is not None and row[0]:
                return
            time.sleep(0.05)
    pytest.fail("pg_receivewal did not receive the latest WAL")


# -- pure parts ---------------------------------------------------------------------------


def test_conninfo_keeps_the_password_out() -> None:
    url = "postgresql+psycopg://edge%20plane:s3cr%27et@db.example:6543/control?sslmode=require"
    info = conninfo(url)
    assert info == (
        "host='db.example' port='6543' user='edge plane' dbname='control' sslmode='require'"
    )
    assert "s3cr" not in info
    assert tool_env(url)["PGPASSWORD"] == "s3cr'et"
    with pytest.raises(BackupError, match="not a PostgreSQL URL") as err:
        conninfo("sqlite:////tmp/x.db")
    with pytest.raises(BackupError, match="not a valid URL") as err:
        conninfo("postgresql+psycopg://u:hunter2@host:notaport/db")
    assert "hunter2" not in str(err.value)


def test_lsn_and_segment_names() -> None:
    assert parse_lsn("16/B374D848") == 0x16B374D848
    assert format_lsn(0x16B374D848) == "16/B374D848"
    size = 16 * 1024 * 1024
    assert segment_of("0000000200000016000000B3", size) == (2, 0x16 * 256 + 0xB3)
    assert segment_name(2, 0x16 * 256 + 0xB3, size) == "0000000200000016000000B3"
    with pytest.raises(BackupError, match="segment name"):
        segment_of("000000010000001600000B37", size)  # 16 MiB: 256 segments per 4 GiB
    with pytest.raises(BackupError, match="LSN"):
        parse_lsn("not-an-lsn")


# -- real clusters ------------------------------------------------------------------------


def test_base_backup_restores_the_same_rows(source: PostgresCluster, work: Path) -> None:
    url = source.create_database("app")
    with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute("CREATE TABLE site (id serial PRIMARY KEY, name text)")
        conn.execute("INSERT INTO site (name) SELECT 'site-' || g FROM generate_series(1, 500) g")

    before = datetime.now(UTC)
    info = base_backup(source.admin_url, work / "full")
    assert sorted(info.files) == ["backup_manifest", "base.tar.gz", "pg_wal.tar.gz"]
    assert parse_lsn(info.start_lsn) < parse_lsn(info.stop_lsn)
    assert info.timeline == 1 and info.pg_major >= 15 and info.size > 100_000
    assert before - timedelta(seconds=2) <= info.start_time <= datetime.now(UTC)
    with pytest.raises(BackupError, match="not empty"):
        base_backup(source.admin_url, work / "full")

    restored = restore_cluster(work / "full", [], work / "restored", database="app", port=None)
    try:
        assert restored.target_time is None
        assert names(restored.url) == [f"site-{i}" for i in range(1, 501)]
        # promoted: it takes writes, on a timeline of its own
        assert restored.timeline == 2
        with psycopg.connect(
            host=str(restored.socket_dir),
            port=restored.port,
            user="postgres",
            dbname="app",
            autocommit=True,
        ) as conn:
            conn.execute("INSERT INTO site (name) VALUES ('after restore')")
        # a second restore never overwrites the first
        with pytest.raises(BackupError, match="not empty"):
            restore_cluster(work / "full", [], work / "restored")
    finally:
        restored.stop()
    # stopped, the data directory stays for the operator, with the command to run it
    assert not restored.running and not restored.socket_dir.exists()
    assert (work / "restored" / "PG_VERSION").is_file()
    assert not (work / "restored" / "recovery.signal").exists()
    assert not (work / "restored" / "postmaster.opts").exists()
    assert str(work / "restored") in restored.start_command()

    # A server that does not answer: pg_basebackup's reason, and never the password.
    with pytest.raises(BackupError, match="pg_basebackup failed") as err:
        base_backup("postgresql+psycopg://postgres:hunter2@127.0.0.1:9/x", work / "none")
    assert "hunter2" not in str(err.value)


def test_a_replication_role_with_a_password(source: PostgresCluster, work: Path) -> None:
    """What the module docstring asks of a production server, and no more: a role with
    REPLICATION and a password (scram), pg_hba lines for it, EXECUTE on pg_switch_wal()."""
    password = "pa ss'w\\rd$"
    execute(
        source,
        "CREATE ROLE backup LOGIN REPLICATION PASSWORD " + "'" + password.replace("'", "''") + "'",
        "GRANT EXECUTE ON FUNCTION pg_switch_wal() TO backup",
        "CREATE TABLE site (id int PRIMARY KEY, name text)",
        "GRANT SELECT ON site TO backup",
    )
    hba = source.data_dir / "pg_hba.conf"
    rules = (
        "host replication backup 127.0.0.1/32 scram-sha-256\n"
        "host all backup 127.0.0.1/32 scram-sha-256\n"
    )
    hba.write_text(rules + hba.read_text())
    execute(source, "SELECT pg_reload_conf()")
    port = source.port
    url = f"postgresql+psycopg://backup:{quote(password, safe='')}@127.0.0.1:{port}/postgres"

    wrong = url.replace(quote(password, safe=""), "hunter2")
    with pytest.raises(BackupError, match="password authentication failed") as err:
        base_backup(wrong, work / "refused")
    assert "hunter2" not in str(err.value)
    with pytest.raises(BackupError, match="password authentication failed"):
        WalArchiver(wrong, work / "refused-wal").start()

    archiver = WalArchiver(url, work / "wal")
    archiver.start()
    try:
        info = base_backup(url, work / "full")
        execute(source, "INSERT INTO site VALUES (1, 'by a replication role')")
        wal, _ = incremental(archiver, url, info.stop_lsn, work / "inc")
        pid = archiver.status().pid
        assert pid is not None
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode()
        assert "backup" in cmdline and "pa ss" not in cmdline and "PGPASSWORD" not in cmdline
    finally:
        archiver.stop()
    with scratch_cluster(work / "full", [wal], user="backup") as restored:
        assert names(restored.url) == ["by a replication role"]


def test_point_in_time_between_two_changes(
    source: PostgresCluster, archiver: WalArchiver, work: Path
) -> None:
    url = source.admin_url
    info = base_backup(url, work / "full")
    execute(
        source,
        "CREATE TABLE site (id int PRIMARY KEY, name text)",
        "INSERT INTO site VALUES (1, 'A')",
    )
    time.sleep(1.1)
    between = datetime.now(UTC)
    time.sleep(1.1)
    execute(source, "INSERT INTO site VALUES (2, 'B')")
    wal, _ = incremental(archiver, url, info.stop_lsn, work / "inc")

    with scratch_cluster(work / "full", [wal], target_time=between) as restored:
        assert names(restored.url) == ["A"]
        assert restored.reached_time is not None and restored.reached_time <= between
        assert restored.covered_from <= between < restored.covered_to
        data_dir = restored.data_dir
    assert not data_dir.exists()  # a scratch restore leaves nothing

    with scratch_cluster(work / "full", [wal]) as restored:
        assert names(restored.url) == ["A", "B"]
        assert restored.wal_segments >= 1

    # The server lost before the next incremental: the segment being written (.partial) holds
    # what the complete ones lack.
    execute(source, "INSERT INTO site VALUES (3, 'C')")
    received(source, timeout=30)
    latest = work / "latest"
    latest.mkdir()
    for path in archiver.collect(info.stop_lsn, include_partial=True):
        shutil.copy2(path, latest / path.name)
    assert any(p.name.endswith(".partial") for p in latest.iterdir())
    with scratch_cluster(work / "full", [latest]) as restored:
        assert names(restored.url) == ["A", "B", "C"]


def test_targets_outside_the_backups_and_gaps_are_refused(
    source: PostgresCluster, archiver: WalArchiver, work: Path
) -> None:
    url = source.admin_url
    info = base_backup(url, work / "full")
    execute(source, "CREATE TABLE site (id int PRIMARY KEY, name text)")
    for i in range(3):  # three more segments, one row in each
        execute(source, f"INSERT INTO site VALUES ({i}, 'row {i}')")
        switch_wal(url)
    wal, _ = incremental(archiver, url, info.stop_lsn, work / "inc")
    data_dir = work / "restored"

    for target in (info.start_time - timedelta(hours=1), datetime.now(UTC) + timedelta(hours=1)):
        with pytest.raises(BackupError, match=r"the backups cover from \d{4}-.* to \d{4}-"):
            restore_cluster(work / "full", [wal], data_dir, target_time=target)
        assert not data_dir.exists()  # nothing half-restored left behind
    with pytest.raises(BackupError, match="time zone"):
        restore_cluster(work / "full", [wal], data_dir, target_time=datetime.now())

    segments = sorted(p.name for p in wal.iterdir())
    assert len(segments) >= 4
    (wal / segments[2]).unlink()
    with pytest.raises(BackupError, match=f"gap: segment {segments[2]}"):
        restore_cluster(work / "full", [wal], data_dir)
    assert not data_dir.exists()

    # One byte changed in the base backup: pg_verifybackup refuses it.
    raw = bytearray((work / "full" / "backup_manifest").read_bytes())
    at = raw.index(b'"Checksum": "') + len(b'"Checksum": "')
    raw[at] = ord("0") if raw[at] != ord("0") else ord("1")
    (work / "full" / "backup_manifest").write_bytes(bytes(raw))
    with pytest.raises(BackupError, match="does not match its manifest"):
        restore_cluster(work / "full", [], data_dir)
    assert not data_dir.exists()


def test_archiver_loses_nothing_across_a_server_restart(
    source: PostgresCluster, archiver: WalArchiver, work: Path
) -> None:
    url = source.admin_url
    # A client that stops answering holds a fast shutdown until this timeout.
    execute(source, "ALTER SYSTEM SET wal_sender_timeout = '2s'", "SELECT pg_reload_conf()")
    deadline = time.monotonic() + 30
    while not any(p.name.endswith(".partial") for p in archiver.wal_dir.iterdir()):
        assert time.monotonic() < deadline, archiver.status()
        time.sleep(0.05)
    first_pid = archiver.status().pid
    assert first_pid is not None

    # The archiver falls behind (frozen before it completed a segment) while the server moves
    # on, recycles the WAL no slot holds, and restarts.
    os.kill(first_pid, signal.SIGSTOP)
    try:
        info = base_backup(url, work / "full")
        execute(
            source,
            "CREATE TABLE site (id int PRIMARY KEY, name text)",
            "INSERT INTO site SELECT g, 'before ' || g FROM generate_series(1, 100) g",
        )
        switch_wal(url)
        execute(source, "CHECKPOINT")
        source.restart()
    finally:
        os.kill(first_pid, signal.SIGCONT)

    # It notices, backs off, and streams again from where it was: the slot kept that WAL.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = archiver.status()
        if status.restarts >= 1 and status.streaming and status.pid != first_pid:
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"the archiver did not come back: {archiver.status()}")
    assert archiver.running

    execute(source, "INSERT INTO site SELECT g, 'after ' || g FROM generate_series(101, 200) g")
    wal, _ = incremental(archiver, url, info.stop_lsn, work / "inc")

    # no segment missing (a gap is refused), and every row there
    with scratch_cluster(work / "full", [wal]) as restored:
        rows = names(restored.url)
    assert len(rows) == 200 and rows[0] == "before 1" and rows[-1] == "after 200"

    # Retired: no process left, and the server no longer keeps WAL for it.
    archiver.drop_slot()
    assert not archiver.running and archiver.status().pid is None
    with psycopg.connect(source.conninfo()) as conn:
        assert conn.execute("SELECT slot_name FROM pg_replication_slots").fetchall() == []


def test_archiver_resyncs_after_the_server_lost_its_wal(
    source: PostgresCluster, archiver: WalArchiver, work: Path
) -> None:
    url = source.admin_url
    deadline = time.monotonic() + 30
    while not any(p.name.endswith(".partial") for p in archiver.wal_dir.iterdir()):
        assert time.monotonic() < deadline, archiver.status()
        time.sleep(0.05)
    archiver.stop()
    # The slot dropped while the archiver is down (as max_slot_wal_keep_size invalidates a
    # slot that holds too much): the server recycles the WAL the archive lacks.
    execute(source, "SELECT pg_drop_replication_slot('edgeplane_backup')")
    for _ in range(2):
        execute(
            source, "CREATE TABLE IF NOT EXISTS filler (x int)", "INSERT INTO filler VALUES (1)"
        )
        switch_wal(url)
    execute(source, "CHECKPOINT")
    archiver.start()
    deadline = time.monotonic() + 30
    while not archiver.status().wal_lost:
        assert time.monotonic() < deadline, archiver.status()
        time.sleep(0.1)
    assert "has already been removed" in archiver.status().last_error

    aside = archiver.resync()
    assert aside is not None and any(aside.iterdir())
    assert not any(p.is_file() for p in archiver.wal_dir.iterdir())
    # a new chain: a full backup, then incrementals
    info = base_backup(url, work / "full")
    execute(
        source,
        "CREATE TABLE site (id int PRIMARY KEY, name text)",
        "INSERT INTO site VALUES (1, 'after resync')",
    )
    wal, _ = incremental(archiver, url, info.stop_lsn, work / "inc")
    assert not archiver.status().wal_lost
    with scratch_cluster(work / "full", [wal]) as restored:
        assert names(restored.url) == ["after resync"]
