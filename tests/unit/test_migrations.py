from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from edgeplane.store.db import Database
from edgeplane.store.migrate import HEAD, alembic_config, current, upgrade
from pgcluster import PostgresCluster

_counter = itertools.count()


def test_head_constant_matches_the_migration_scripts() -> None:
    assert ScriptDirectory.from_config(alembic_config()).get_current_head() == HEAD


# 0007: every location gets its region code; stored regions follow their location --------


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database (no schema), once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'edgeplane.db'}"
        return
    cluster: PostgresCluster = request.getfixturevalue("pg_cluster")
    name = f"m{os.getpid()}_{next(_counter)}"
    url = cluster.create_database(name)
    yield url
    cluster.drop_database(name)


def _rows(db: Database, query: str) -> list[tuple[Any, ...]]:
    with db.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(query))]


def test_0007_gives_locations_region_codes_and_aligns_stored_regions(empty_url: str) -> None:
    db = Database.for_tests(empty_url)
    try:
        upgrade(db.engine, "0006")
        now = datetime.now(UTC)
        with db.engine.begin() as conn:
            # Locations an admin added before 0007: the region type only.
            conn.execute(
                text(
                    "INSERT INTO regions (code, name, latitude, longitude, area, created_at,"
                    " updated_at) VALUES (:code, :code, :lat, :lon, :area, :now, :now)"
                ),
                [
                    {"code": "co-bogota", "lat": 4.71, "lon": -74.07, "area": "americas",
                     "now": now},
                    {"code": "mx-central", "lat": 19.43, "lon": -99.13, "area": "americas",
                     "now": now},
                    # Given by hand, against its coordinates: the region type stays.
                    {"code": "odd-one", "lat": 48.0, "lon": 2.0, "area": "asia_pacific",
                     "now": now},
                ],
            )  # fmt: skip
            # 0006 only checked the region type: a data center in us-east could say sa.
            for dc_id, region, location in (
                ("dc-1", "sa", "us-east"),
                ("dc-2", "na", "us-east"),
                ("dc-3", "na", "co-bogota"),
            ):
                conn.execute(
                    text(
                        "INSERT INTO data_centers (project_id, id, name, region, location, tier,"
                        " cpu, memory, storage, environment, created_at, updated_at) VALUES"
                        " ('default', :id, :id, :region, :location, 3, 10, 10, 10, 'prod',"
                        " :now, :now)"
                    ),
                    {"id": dc_id, "region": region, "location": location, "now": now},
                )
            # A location's region type could change after servers were placed there.
            conn.execute(
                text(
                    "INSERT INTO servers (project_id, id, name, type, region, location, cpu,"
                    " memory, storage, profile, status, environment, labels, created_at,"
                    " updated_at) VALUES ('default', 's-1', 's', 'edge', 'europe', 'us-east',"
                    " 1, 1, 1, 'standard', 'active', 'prod', '{}', :now, :now)"
                ),
                {"now": now},
            )
        upgrade(db.engine)
        assert current(db.engine) == HEAD
        codes = dict(_rows(db, "SELECT code, region_code FROM regions"))
        assert len(codes) == 19
        assert codes["us-east"] == codes["ca-central"] == codes["mx-central"] == "na"
        assert codes["sa-east"] == codes["co-bogota"] == "sa"
        assert codes["eu-central"] == codes["uk-south"] == "eu"
        assert codes["me-central"] == codes["af-south"] == "mea"
        assert codes["ap-south"] == codes["au-southeast"] == codes["odd-one"] == "apac"
        assert dict(_rows(db, "SELECT id, region FROM data_centers")) == {
            "dc-1": "na",
            "dc-2": "na",
            "dc-3": "sa",
        }
        assert _rows(db, "SELECT id, region FROM servers") == [("s-1", "americas")]
        # No placeholder is left behind: a row without a region code is refused (PostgreSQL)
        # or visibly empty (SQLite keeps the column's default).
        if db.engine.dialect.name == "postgresql":
            with pytest.raises(IntegrityError), db.engine.begin() as conn:
                conn.execute(
                    text(
                        "INSERT INTO regions (code, name, latitude, longitude, area, created_at,"
                        " updated_at) VALUES ('x-1', 'x', 0, 0, 'europe', :now, :now)"
                    ),
                    {"now": now},
                )

        assert downgrade(db, "0006") == "0006"
        with db.engine.connect() as conn:
            columns = {c["name"] for c in inspect(conn).get_columns("regions")}
        assert "region_code" not in columns and "area" in columns
        upgrade(db.engine)
        assert dict(_rows(db, "SELECT code, region_code FROM regions"))["co-bogota"] == "sa"
    finally:
        db.dispose()


def downgrade(db: Database, target: str) -> str | None:
    from alembic import command

    cfg = alembic_config()
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, target)
    return current(db.engine)


# 0009: zone serials leave the node's JSON for a row per node and zone --------------------


def _dns(db: Database) -> dict[str, Any]:
    return {
        node_id: dns if isinstance(dns, dict) else json.loads(dns)
        for node_id, dns in _rows(db, "SELECT id, dns FROM edge_nodes")
    }


def test_0009_moves_zone_serials_to_rows_and_back(empty_url: str) -> None:
    db = Database.for_tests(empty_url)
    try:
        upgrade(db.engine, "0008")
        now = datetime.now(UTC)
        with db.engine.begin() as conn:
            for node_id, dns in (
                ("node-a", '{"serials": {"a.example.": 3, "b.example.": 7}, "error": "x"}'),
                ("node-b", '{"serials": {}, "error": null}'),
                ("node-c", "{}"),
            ):
                conn.execute(
                    text(
                        "INSERT INTO edge_nodes (id, name, region, registered_at, stats,"
                        " healthy, dns, bundles) VALUES (:id, :id, 'us-east', :now, '{}',"
                        " true, :dns, '{}')"
                    ),
                    {"id": node_id, "now": now, "dns": dns},
                )
        upgrade(db.engine)
        assert sorted(_rows(db, "SELECT node_id, zone, serial FROM edge_zone_serials")) == [
            ("node-a", "a.example.", 3),
            ("node-a", "b.example.", 7),
        ]
        assert _dns(db) == {"node-a": {"error": "x"}, "node-b": {"error": None}, "node-c": {}}
        assert downgrade(db, "0008") == "0008"
        back = _dns(db)
        assert back["node-a"] == {"error": "x", "serials": {"a.example.": 3, "b.example.": 7}}
        assert back["node-c"] == {"serials": {}}
        assert "edge_zone_serials" not in inspect(db.engine).get_table_names()
    finally:
        db.dispose()


# The migrations make the schema the models describe --------------------------------------


def test_migrated_schema_matches_the_models(empty_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from edgeplane.store import monitoring_tables  # noqa: F401 (its tables in the metadata)
    from edgeplane.store.tables import Base

    db = Database.for_tests(empty_url)
    try:
        upgrade(db.engine)
        with db.engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(ctx, Base.metadata) == []
    finally:
        db.dispose()
