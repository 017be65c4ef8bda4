"""Bring a database to the newest schema with Alembic."""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
# The newest migration; tests check it against Alembic's own view of the scripts. Knowing it
# lets a process that finds the database current skip importing Alembic at all.
HEAD = "0022"


def alembic_config() -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def is_current(engine: Engine) -> bool:
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return False
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == HEAD


@contextlib.contextmanager
def _one_at_a_time(engine: Engine) -> Iterator[None]:
    """Several processes may start at once on one SQLite file (``serve --workers``, replicas
    on one machine): one migrates, the rest wait (a lock file beside the database). PostgreSQL
    takes an advisory lock in the migration's own transaction instead."""
    path = engine.url.database if engine.dialect.name == "sqlite" else None
    if not path or path == ":memory:":
        yield
        return
    with open(f"{path}.migrate-lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def upgrade(engine: Engine, target: str = "head") -> None:
    if target == "head" and is_current(engine):
        return
    with _one_at_a_time(engine):
        if target == "head" and is_current(engine):  # another process just did it
            return
        _upgrade(engine, target)


def _upgrade(engine: Engine, target: str) -> None:
    from alembic import command

    cfg = alembic_config()
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Several control-plane replicas may start at once: one migrates, the rest wait.
            conn.execute(text("SELECT pg_advisory_xact_lock(7405961)"))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, target)


def current(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
