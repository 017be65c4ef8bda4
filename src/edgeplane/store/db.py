"""The database handle: engine, sessions, and the unit of work every change goes through."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

from edgeplane.secrets import SecretBox
from edgeplane.store import revision
from edgeplane.store.actor import Actor
from edgeplane.store.tables import AuditRow, utcnow

SQLITE_BUSY_TIMEOUT_S = 30.0  # how long a writer waits for SQLite's lock before it fails


def make_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_S},
            **kwargs,
        )

        @event.listens_for(engine, "connect")
        def _pragmas(conn: Any, _record: Any) -> None:
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
            cur.close()

        # Writers serialise on SQLite: take the write lock when the transaction starts, so two
        # writers never deadlock upgrading read locks.
        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            write = conn.get_execution_options().get("edgeplane_write")
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

        @event.listens_for(engine, "connect")
        def _no_autobegin(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None

        return engine
    if "poolclass" not in kwargs:
        kwargs.setdefault("pool_size", 10)
        kwargs.setdefault("max_overflow", 20)
    if make_url(url).get_backend_name() == "postgresql":
        kwargs["connect_args"] = {**pg_connect_defaults(url), **kwargs.get("connect_args", {})}
    # A pooled connection is tried before use: one the server (or a failover) closed is
    # replaced, and with it every connection older than the failure.
    return create_engine(url, pool_pre_ping=True, **kwargs)


# libpq settings of every PostgreSQL connection unless the URL sets them: a server that is gone
# costs seconds, not minutes. Connecting waits 5 s per host (psycopg's default is 130 s, libpq's
# forever); an idle connection is probed after 10 s of silence, then every 5 s (the kernel's
# default waits 2 hours); data the server does not acknowledge for 15 s ends the connection
# (else TCP retransmits for about 15 minutes). A query that runs long is not affected: the
# server acknowledges it at once, and keepalives answer while it runs.
PG_CONNECT_DEFAULTS = {
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 15000,
}


def pg_connect_defaults(url: str) -> dict[str, int]:
    """The ``PG_CONNECT_DEFAULTS`` that the URL's query does not set itself."""
    query = make_url(url).query
    return {key: value for key, value in PG_CONNECT_DEFAULTS.items() if key not in query}


# SQLSTATEs of a PostgreSQL server that cannot serve now: connection exceptions (class 08),
# shutting down or starting up (57P01-57P03), no connection slot left (53300), and read-only
# (25006: a standby not promoted yet).
_UNAVAILABLE_SQLSTATES = ("08", "57P01", "57P02", "57P03", "53300", "25006")
_NOT_POSTGRESQL = object()


def unavailable(exc: BaseException) -> bool:
    """Whether an error says that the database cannot be reached or written now (connection
    refused or lost, a server shutting down, starting or read-only, no pooled connection free
    in time) rather than anything about the request: the same request may succeed later, for
    example once a standby is promoted."""
    if isinstance(exc, PoolTimeout):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated or isinstance(exc, InterfaceError):
        return True
    sqlstate = getattr(exc.orig, "sqlstate", _NOT_POSTGRESQL)
    if sqlstate is _NOT_POSTGRESQL:  # SQLite's: locks wait (busy_timeout), nothing to tell
        return False
    if sqlstate is None:  # psycopg's own: connecting failed, or the connection broke
        return isinstance(exc, OperationalError)
    return str(sqlstate).startswith(_UNAVAILABLE_SQLSTATES)


class Change:
    __slots__ = ("action", "after", "before", "kind", "object_id", "project")

    def __init__(
        self,
        action: str,
        kind: str,
        object_id: str,
        project: str | None,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
    ) -> None:
        self.action, self.kind, self.object_id = action, kind, object_id
        self.project, self.before, self.after = project, before, after


class Tx:
    """One transaction on behalf of an actor within a project.

    Changes are recorded with ``record``; at commit the revision is bumped once and one audit
    event per change is written, all in the same database transaction. A change that stamps
    rows with its revision before the commit asks ``next_revision()`` for it
    (``edgeplane.store.revision`` holds the locking rule).
    """

    def __init__(
        self,
        session: Session,
        actor: Actor,
        project: str,
        secrets: SecretBox | None = None,
        *,
        ocsp_url: str | None = None,
    ) -> None:
        self.session = session
        # The internal CA's OCSP responder (the control plane's public URL + /ocsp), named in
        # the certificates it issues; None: they name none (nothing to staple).
        self.ocsp_url = ocsp_url
        self.actor = actor
        self.project = project
        self.changes: list[Change] = []
        self.revision: int | None = None  # set at commit when the revision was bumped
        self._next: int | None = None
        self._secrets = secrets

    @property
    def secrets(self) -> SecretBox:
        """The box that encrypts secrets at rest (private keys), given to the ``Database``."""
        if self._secrets is None:
            raise RuntimeError("this Database was opened without a secret box (secrets=...)")
        return self._secrets

    def current_revision(self) -> int:
        """The newest committed revision (or this transaction's, once it has taken one)."""
        return self._next if self._next is not None else revision.current(self.session)

    def next_revision(self) -> int:
        """The revision this transaction commits as; the counter stays locked until then."""
        if self._next is None:
            self._next = revision.lock(self.session) + 1
        return self._next

    def record(
        self,
        action: str,
        kind: str,
        object_id: str,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
        *,
        global_object: bool = False,
    ) -> None:
        """Note a change; ``global_object`` for objects outside any project (regions)."""
        scope = None if global_object else self.project
        self.changes.append(Change(action, kind, object_id, scope, before, after))

    def _flush_changes(self) -> None:
        if not self.changes and self._next is None:
            return
        self.session.flush()
        self.revision = revision.bump(self.session)
        if self._next is not None and self.revision != self._next:
            raise RuntimeError(f"revision {self._next} was promised, {self.revision} taken")
        now = utcnow()
        for c in self.changes:
            self.session.add(
                AuditRow(
                    revision=self.revision,
                    at=now,
                    actor=self.actor.name,
                    project_id=c.project,
                    action=c.action,
                    kind=c.kind,
                    object_id=c.object_id,
                    before=c.before,
                    after=c.after,
                )
            )


class Database:
    def __init__(
        self,
        url: str,
        *,
        secrets: SecretBox | None = None,
        ocsp_url: str | None = None,
        **engine_kwargs: Any,
    ) -> None:
        self.url = url
        self.secrets = secrets
        self.ocsp_url = ocsp_url
        self.engine = make_engine(url, **engine_kwargs)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._write_engine = self.engine.execution_options(edgeplane_write=True)
        self._write_sessions = sessionmaker(self._write_engine, expire_on_commit=False)
        # SQLite has one writer at a time, and its waiting writers poll (busy_timeout) rather
        # than queue: under a steady stream of writes one of them can lose every race for a
        # long time. This process's writers wait on a lock here instead (woken as it is
        # released, not polling); the database lock is then only contended by other
        # processes. Re-entrant, so that a write transaction nested in another fails as
        # SQLite's lock would make it fail (after the busy timeout), instead of hanging.
        self._writers: threading.RLock | None = (
            threading.RLock() if self.engine.dialect.name == "sqlite" else None
        )
        # Called with the new revision after each commit that bumped it (edge long-polls).
        self.after_commit: list[Callable[[int], None]] = []
        # Called with the session just before each write transaction commits; raising refuses
        # the commit (a background job fenced out of its lease: ``services.leases``).
        self.before_commit: list[Callable[[Session], None]] = []

    @classmethod
    def for_tests(cls, url: str, *, secrets: SecretBox | None = None) -> Database:
        """A small pool: tests open many databases, each disposed when its test ends."""
        if url.startswith("sqlite"):
            return cls(url, secrets=secrets)
        return cls(url, secrets=secrets, pool_size=2, max_overflow=8)

    def ping(self) -> bool:
        """Whether the database answers."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception:
            return False
        return True

    def current_revision(self) -> int:
        """The newest committed revision, on a connection of its own."""
        with self.engine.connect() as conn:
            return revision.current(conn)

    def timeline(self) -> int | None:
        """The history the database's state belongs to: on PostgreSQL the server's WAL
        timeline, which a promotion (or a point-in-time recovery) starts anew, so that the
        last transactions of the old one may be missing; on SQLite always 1. None when it
        cannot be told now: a standby in recovery, an unreachable server, a server without
        the WAL functions."""
        if self.engine.dialect.name != "postgresql":
            return 1
        try:
            with self.engine.connect() as conn:
                name = conn.scalar(text("SELECT pg_walfile_name(pg_current_wal_lsn())"))
        except Exception:
            return None
        try:  # 24 hex digits, the first 8 the timeline (callable by any user)
            return int(str(name)[:8], 16)
        except ValueError:
            return None

    @contextmanager
    def _writer(self) -> Iterator[None]:
        """This process's turn to write (SQLite; nothing to wait for on other databases)."""
        if self._writers is None:
            yield
            return
        if not self._writers.acquire(timeout=SQLITE_BUSY_TIMEOUT_S):
            raise OperationalError(
                "BEGIN IMMEDIATE",
                None,
                sqlite3.OperationalError(
                    f"database is locked (this process's writers queued for "
                    f"{SQLITE_BUSY_TIMEOUT_S:.0f} s)"
                ),
            )
        try:
            yield
        finally:
            self._writers.release()

    @contextmanager
    def writing(self) -> Iterator[Connection]:
        """A write transaction on a plain connection (small statements outside the unit of
        work, e.g. a lease or a last-used time): committed when the block ends."""
        with self._writer(), self._write_engine.begin() as conn:
            yield conn

    @contextmanager
    def transaction(self, actor: Actor, project: str) -> Iterator[Tx]:
        """A read-write transaction: commit on success, roll back on any error."""
        with self._writer(), self._write_sessions() as session:
            tx = Tx(session, actor, project, self.secrets, ocsp_url=self.ocsp_url)
            try:
                yield tx
                tx._flush_changes()
                for check in self.before_commit:
                    check(session)
                session.commit()
            except BaseException:
                session.rollback()
                raise
        if tx.revision is not None:
            for hook in list(self.after_commit):
                with suppress(Exception):  # a waker must never fail a committed change
                    hook(tx.revision)

    @contextmanager
    def read(self, actor: Actor, project: str) -> Iterator[Tx]:
        """A read-only view (changes recorded here are an error)."""
        with self._sessions() as session:
            tx = Tx(session, actor, project, self.secrets)
            try:
                yield tx
                if tx.changes or tx._next is not None:
                    raise RuntimeError("changes recorded in a read-only transaction")
            finally:
                session.rollback()

    def dispose(self) -> None:
        self.engine.dispose()
