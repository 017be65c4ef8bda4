"""The database handle: engine, sessions, and the unit of work every change goes through."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from edgeplane.services.actor import Actor
from edgeplane.store.tables import AuditRow, RevisionRow, utcnow


def make_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs
        )

        @event.listens_for(engine, "connect")
        def _pragmas(conn: Any, _record: Any) -> None:
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
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
    return create_engine(url, pool_pre_ping=True, **kwargs)


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
    event per change is written, all in the same database transaction.
    """

    def __init__(self, session: Session, actor: Actor, project: str) -> None:
        self.session = session
        self.actor = actor
        self.project = project
        self.changes: list[Change] = []
        self.revision: int | None = None

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
        if not self.changes:
            return
        self.session.flush()
        value = self.session.execute(
            update(RevisionRow)
            .where(RevisionRow.id == 1)
            .values(value=RevisionRow.value + 1)
            .returning(RevisionRow.value)
        ).scalar_one()
        self.revision = int(value)
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
    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.url = url
        self.engine = make_engine(url, **engine_kwargs)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._write_sessions = sessionmaker(
            self.engine.execution_options(edgeplane_write=True), expire_on_commit=False
        )
        # Called with the new revision after each commit that bumped it (edge long-polls).
        self.after_commit: list[Callable[[int], None]] = []

    @classmethod
    def for_tests(cls, url: str) -> Database:
        """A small pool: tests open many databases, each disposed when its test ends."""
        return cls(url, pool_size=2, max_overflow=8) if not url.startswith("sqlite") else cls(url)

    @contextmanager
    def transaction(self, actor: Actor, project: str) -> Iterator[Tx]:
        """A read-write transaction: commit on success, roll back on any error."""
        with self._write_sessions() as session:
            tx = Tx(session, actor, project)
            try:
                yield tx
                tx._flush_changes()
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
            tx = Tx(session, actor, project)
            try:
                yield tx
                if tx.changes:
                    raise RuntimeError("changes recorded in a read-only transaction")
            finally:
                session.rollback()

    def dispose(self) -> None:
        self.engine.dispose()
