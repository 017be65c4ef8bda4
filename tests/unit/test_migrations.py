from __future__ import annotations

from alembic.script import ScriptDirectory

from edgeplane.store.migrate import HEAD, alembic_config


def test_head_constant_matches_the_migration_scripts() -> None:
    assert ScriptDirectory.from_config(alembic_config()).get_current_head() == HEAD
