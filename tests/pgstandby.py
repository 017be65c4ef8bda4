"""A streaming standby of a throwaway test cluster: PostgreSQL's own physical replication.

The standby is a base backup of the primary (``pg_basebackup -R``: it writes
``primary_conninfo`` and ``standby.signal``) in a directory of its own, started on another free
port of 127.0.0.1. It replays the primary's WAL as it streams and answers read-only queries
(hot standby) until it is promoted. As root it runs as the ``postgres`` user, like the primary
(``pgcluster.PostgresCluster``).

Typical use (a failover)::

    primary = PostgresCluster(base / "primary")
    primary.start()
    standby = StandbyCluster(primary, base / "standby")
    standby.start()              # base backup, start, wait until it streams
    ...
    standby.wait_replayed()      # everything the primary wrote so far is on the standby
    primary.stop("immediate")    # the primary is lost (no shutdown checkpoint: a crash)
    standby.promote()            # the standby takes writes from now on
"""

from __future__ import annotations

import pathlib
import time

import psycopg

from pgcluster import SERVICE_USER, PostgresCluster, PostgresError, _quote, find_pg_bin

_POLL_S = 0.05


class StandbyCluster(PostgresCluster):
    def __init__(
        self, primary: PostgresCluster, base_dir: pathlib.Path, *, name: str = "standby"
    ) -> None:
        super().__init__(base_dir)
        self.primary = primary
        # The walreceiver's application_name (pg_stat_replication) is the cluster's name.
        self.name = name

    def start(self, timeout: float = 30.0) -> None:
        """Take the base backup (unless done already in base_dir), start the standby on a free
        port and wait until it streams from the primary (which must be running)."""
        if self.port is not None:
            return
        if not (self.data_dir / "PG_VERSION").exists():
            self._base_backup()
        super().start()
        self.wait_streaming(timeout)

    def wait_streaming(self, timeout: float = 30.0) -> None:
        """Wait until the primary lists this standby as streaming (``pg_stat_replication``)."""
        deadline = time.monotonic() + timeout
        state = None
        with psycopg.connect(self.primary.conninfo(), autocommit=True) as conn:
            while time.monotonic() < deadline:
                row = conn.execute(
                    "SELECT state FROM pg_stat_replication WHERE application_name = %s",
                    (self.name,),
                ).fetchone()
                state = row[0] if row else None
                if state == "streaming":
                    return
                time.sleep(_POLL_S)
        raise PostgresError(
            f"the standby does not stream within {timeout} s (state {state}){self._log_tail()}"
        )

    def wait_replayed(self, timeout: float = 30.0) -> str:
        """Wait until the standby has replayed all the WAL the primary has inserted so far (the
        insert position: with ``synchronous_commit`` off, commits may not be written yet);
        return that LSN."""
        with psycopg.connect(self.primary.conninfo(), autocommit=True) as conn:
            row = conn.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()
        assert row is not None
        lsn = str(row[0])
        deadline = time.monotonic() + timeout
        replayed = None
        with psycopg.connect(self.conninfo(), autocommit=True) as conn:
            while time.monotonic() < deadline:
                row = conn.execute(
                    "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn, pg_last_wal_replay_lsn()::text",
                    (lsn,),
                ).fetchone()
                assert row is not None
                if row[0]:
                    return lsn
                replayed = row[1]
                time.sleep(_POLL_S)
        raise PostgresError(f"the standby replayed up to {replayed}, not {lsn}, in {timeout} s")

    def in_recovery(self) -> bool:
        """True while the server is a standby (read-only), False once it is promoted."""
        with psycopg.connect(self.conninfo(), autocommit=True) as conn:
            row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
        assert row is not None
        return bool(row[0])

    def promote(self, timeout: float = 30.0) -> None:
        """``pg_ctl promote``: end recovery and take writes; returns once it does."""
        self._require_port()
        assert self._bin is not None
        self._run(
            [
                str(self._bin / "pg_ctl"),
                "-D",
                str(self.data_dir),
                "-w",
                "-t",
                str(int(timeout)),
                "promote",
            ]
        )
        if self.in_recovery():
            raise PostgresError(f"still in recovery after promotion{self._log_tail()}")

    # -- internals -------------------------------------------------------------------------

    def _base_backup(self) -> None:
        bin_dir = find_pg_bin()
        if bin_dir is None:
            raise PostgresError("no PostgreSQL found (install `postgresql`)")
        self._bin = bin_dir
        primary_port = self.primary._require_port()
        self.base_dir.mkdir(parents=True, exist_ok=True)
        if self._as_root:
            self._prepare_for_service_user()
        self._run(
            [
                str(bin_dir / "pg_basebackup"),
                "-D",
                str(self.data_dir),
                "-h",
                "127.0.0.1",
                "-p",
                str(primary_port),
                "-U",
                SERVICE_USER,
                "-R",  # primary_conninfo in postgresql.auto.conf, and standby.signal
                "-X",
                "stream",
                "-c",
                "fast",  # an immediate checkpoint: no wait for the next one
                "--no-sync",
                "--no-manifest",
            ]
        )
        # The copied postgresql.conf names the primary's socket directory: use our own.
        settings = {
            "unix_socket_directories": _quote(self._socket_dir()),
            "cluster_name": _quote(self.name),
        }
        lines = "".join(f"{key} = {value}\n" for key, value in settings.items())
        self._run(
            ["sh", "-c", 'cat >> "$1"', "sh", str(self.data_dir / "postgresql.conf")],
            input=f"\n# edgeplane test standby\n{lines}",
        )
