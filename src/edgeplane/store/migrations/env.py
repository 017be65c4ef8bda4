"""Alembic environment: runs on the connection that ``edgeplane.store.migrate`` hands it."""

from __future__ import annotations

from alembic import context

from edgeplane.store import (  # noqa: F401 (their tables in Base.metadata)
    access_tables,
    backup_tables,
    dr_tables,
    function_obs_tables,
    function_tables,
    ha_tables,
    iac_tables,
    monitoring_tables,
    scaling_tables,
    security_tables,
    waf_tables,
)
from edgeplane.store.tables import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through edgeplane.store.migrate.upgrade()")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
