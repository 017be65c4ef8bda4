"""The throwaway PostgreSQL cluster that integration tests build on."""

from __future__ import annotations

import os
import pathlib
import socket

import psycopg
import pytest

from pgcluster import PostgresCluster, find_pg_bin

pytestmark = pytest.mark.integration


def _require_postgres() -> None:
    if find_pg_bin() is not None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(
            "PostgreSQL is not installed, and CI must not skip: run scripts/bootstrap --with-test"
        )
    pytest.skip("PostgreSQL is not installed (run scripts/bootstrap --with-test)")


def _libpq(sqlalchemy_url: str) -> str:
    return sqlalchemy_url.replace("postgresql+psycopg://", "postgresql://", 1)


def test_cluster_databases_and_templates(tmp_path: pathlib.Path) -> None:
    _require_postgres()
    cluster = PostgresCluster(tmp_path / "pg")
    cluster.start()
    try:
        port = cluster.port
        assert port is not None
        assert cluster.admin_url == f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"

        first = cluster.create_database("first")
        assert first == f"postgresql+psycopg://postgres@127.0.0.1:{port}/first"
        with psycopg.connect(_libpq(first), autocommit=True) as conn:
            conn.execute("CREATE TABLE site (id integer PRIMARY KEY, name text NOT NULL)")
            conn.execute("INSERT INTO site VALUES (1, 'example.org')")
            assert conn.execute("SELECT id, name FROM site").fetchall() == [(1, "example.org")]
            assert conn.execute("SHOW fsync").fetchone() == ("off",)
            assert conn.execute("SHOW max_connections").fetchone() == ("200",)

        second = cluster.create_database("second", template="first")
        with psycopg.connect(_libpq(second)) as conn:
            assert conn.execute("SELECT id, name FROM site").fetchall() == [(1, "example.org")]

        # Dropping ends the connections still open on the database.
        lingering = psycopg.connect(_libpq(second))
        cluster.drop_database("second")
        lingering.close()
        with psycopg.connect(_libpq(cluster.admin_url)) as conn:
            names = {row[0] for row in conn.execute("SELECT datname FROM pg_database")}
        assert "second" not in names
        assert "first" in names
    finally:
        cluster.stop()

    cluster.stop()  # idempotent
    with (
        socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s,
        pytest.raises(ConnectionRefusedError),
    ):
        s.connect(("127.0.0.1", port))
