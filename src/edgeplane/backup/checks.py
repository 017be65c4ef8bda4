"""What a verification checks of a restored database, through SQLAlchemy (SQLite or
PostgreSQL alike): the schema revision, the control plane's revision, every table's row
count, and that the stored secrets decrypt with the secret key the backup holds."""

from __future__ import annotations

from typing import Any

from sqlalchemy import create_engine, inspect, text

from edgeplane.secrets import SecretBox, SecretError

SAMPLE = 20  # encrypted values tried per column


def database_facts(url: str, secret_key: str | None) -> dict[str, Any]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            names = sorted(inspect(conn).get_table_names())
            rows = {t: int(conn.execute(text(f'SELECT count(*) FROM "{t}"')).scalar() or 0)
                    for t in names}  # fmt: skip
            schema = (
                conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
                if "alembic_version" in names
                else None
            )
            revision = (
                int(conn.execute(text("SELECT value FROM revision")).scalar() or 0)
                if "revision" in names
                else None
            )
            secrets = _secrets(conn, names, secret_key)
    finally:
        engine.dispose()
    return {"rows": rows, "schema": schema, "revision": revision, "secrets": secrets}


def _secrets(conn: Any, names: list[str], secret_key: str | None) -> dict[str, Any]:
    """Try up to ``SAMPLE`` values of every ``*_encrypted`` column."""
    box = SecretBox(secret_key) if secret_key else None
    tried = failed = 0
    columns = []
    for table in names:
        for column in inspect(conn).get_columns(table):
            if not column["name"].endswith("_encrypted"):
                continue
            columns.append(f"{table}.{column['name']}")
            values = conn.execute(
                text(
                    f'SELECT "{column["name"]}" FROM "{table}" '
                    f'WHERE "{column["name"]}" IS NOT NULL LIMIT {SAMPLE}'
                )
            ).scalars()
            for value in values:
                tried += 1
                if box is None:
                    failed += 1
                    continue
                try:
                    box.decrypt(value)
                except SecretError:
                    failed += 1
    return {"columns": columns, "tried": tried, "failed": failed, "key": box is not None}
