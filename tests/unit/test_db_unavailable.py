"""Which database errors mean "unavailable now, retry" (the API's 503), and the libpq settings
a PostgreSQL URL gets unless it sets them. The real errors of a failover are met in
``tests/integration/test_pg_failover.py``; here each kind of error is told apart."""

from __future__ import annotations

import sqlite3

import psycopg
import pytest
from sqlalchemy import exc

from edgeplane.store.db import PG_CONNECT_DEFAULTS, pg_connect_defaults, unavailable


def wrapped(kind: type[exc.DBAPIError], orig: Exception, **kw: bool) -> exc.DBAPIError:
    return kind("SELECT 1", {}, orig, **kw)


@pytest.mark.parametrize(
    "error",
    [
        # connecting failed (refused, timed out, every host read-only): psycopg's own, no SQLSTATE
        wrapped(exc.OperationalError, psycopg.OperationalError("connection failed")),
        # a write on a standby
        wrapped(exc.InternalError, psycopg.errors.ReadOnlySqlTransaction("read-only")),
        wrapped(exc.OperationalError, psycopg.errors.AdminShutdown("terminating connection")),
        wrapped(exc.OperationalError, psycopg.errors.CannotConnectNow("starting up")),
        wrapped(exc.OperationalError, psycopg.errors.TooManyConnections("too many")),
        wrapped(exc.OperationalError, psycopg.errors.ConnectionFailure("lost")),
        # the dialect saw the connection break
        wrapped(exc.DatabaseError, psycopg.DatabaseError("x"), connection_invalidated=True),
        wrapped(exc.InterfaceError, psycopg.InterfaceError("the connection is closed")),
        exc.TimeoutError("QueuePool limit of size 10 overflow 20 reached"),
    ],
    ids=lambda e: type(getattr(e, "orig", None) or e).__name__,
)
def test_errors_of_a_database_that_cannot_serve_now(error: Exception) -> None:
    assert unavailable(error)


@pytest.mark.parametrize(
    "error",
    [
        # about the request or the data: retrying the same thing will not help, or is a conflict
        wrapped(exc.IntegrityError, psycopg.errors.UniqueViolation("duplicate key")),
        wrapped(exc.OperationalError, psycopg.errors.DeadlockDetected("deadlock")),
        wrapped(exc.OperationalError, psycopg.errors.QueryCanceled("statement timeout")),
        wrapped(exc.ProgrammingError, psycopg.errors.UndefinedTable("no such table")),
        wrapped(exc.DataError, psycopg.errors.NumericValueOutOfRange("out of range")),
        # SQLite's errors say nothing of the kind (a lock waits for busy_timeout first)
        wrapped(exc.OperationalError, sqlite3.OperationalError("no such table: x")),
        ValueError("not a database error"),
    ],
    ids=lambda e: type(getattr(e, "orig", None) or e).__name__,
)
def test_errors_that_are_not_unavailability(error: Exception) -> None:
    assert not unavailable(error)


def test_postgresql_connections_get_short_timeouts_unless_the_url_sets_them() -> None:
    url = "postgresql+psycopg://u@/db?host=10.0.0.1:5432&host=10.0.0.2:5432"
    assert pg_connect_defaults(url) == PG_CONNECT_DEFAULTS
    assert PG_CONNECT_DEFAULTS["connect_timeout"] <= 5
    chosen = pg_connect_defaults(url + "&connect_timeout=2&tcp_user_timeout=0")
    assert "connect_timeout" not in chosen and "tcp_user_timeout" not in chosen
    assert chosen["keepalives_idle"] == PG_CONNECT_DEFAULTS["keepalives_idle"]
