"""What the backup schedule decides, as a pure function of the catalog: spec 004's full weekly,
incremental daily, configuration on change; retention that never breaks a chain; what is
verified."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from edgeplane.backup import schedule
from edgeplane.settings import Settings
from edgeplane.store.backup_tables import BackupRow

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
S = Settings(home=Path("/nonexistent"))


def row(
    backup_id: str,
    kind: str,
    age: timedelta,
    *,
    revision: int = 1,
    chain: list[str] | None = None,
    expires: timedelta | None = None,
    verified: timedelta | None = None,
) -> BackupRow:
    return BackupRow(
        id=backup_id,
        kind=kind,
        created_at=NOW - age,
        revision=revision,
        manifest={"chain": chain or []},
        expires_at=None if expires is None else NOW + expires,
        verified_at=None if verified is None else NOW - verified,
    )


def test_nothing_yet_makes_a_full_and_a_config() -> None:
    assert schedule.due([], S, NOW, 5) == ["full", "config"]


def test_a_full_weekly_and_an_incremental_daily() -> None:
    full = row("f", "full", timedelta(days=2))
    config = row("c", "config", timedelta(hours=1), revision=5)
    assert schedule.due([config, full], S, NOW, 5) == ["incremental"]
    incr = row("i", "incremental", timedelta(hours=3))
    assert schedule.due([config, incr, full], S, NOW, 5) == []
    old = row("f", "full", timedelta(days=7, seconds=1))
    assert schedule.due([config, old], S, NOW, 5) == ["full"]


def test_a_config_backup_on_every_change() -> None:
    full = row("f", "full", timedelta(hours=1))
    config = row("c", "config", timedelta(days=30), revision=5)
    assert schedule.due([config, full], S, NOW, 5) == []
    assert schedule.due([config, full], S, NOW, 6) == ["config"]
    # compared at 6 and found the same (a staple moved the revision): not again until it moves
    assert schedule.due([config, full], S, NOW, 6, checked=6) == []
    assert schedule.due([config, full], S, NOW, 7, checked=6) == ["config"]


def test_retention_keeps_a_full_while_an_incremental_needs_it() -> None:
    full = row("f1", "full", timedelta(days=91), expires=-timedelta(days=1))
    incr = row("i1", "incremental", timedelta(days=20), chain=["f1"], expires=timedelta(days=10))
    lone = row("f0", "full", timedelta(days=120), expires=-timedelta(days=30))
    gone = schedule.expired([incr, full, lone], NOW)
    assert [r.id for r in gone] == ["f0"]
    incr_expired = row(
        "i1", "incremental", timedelta(days=31), chain=["f1"], expires=-timedelta(days=1)
    )
    assert {r.id for r in schedule.expired([incr_expired, full, lone], NOW)} == {"i1", "f1", "f0"}


def test_every_new_backup_is_verified_then_the_newest_daily() -> None:
    a = row("a", "full", timedelta(hours=5), verified=timedelta(hours=4))
    b = row("b", "incremental", timedelta(hours=1))
    assert [r.id for r in schedule.to_verify([b, a], S, NOW)] == ["b"]
    b.verified_at = NOW - timedelta(hours=25)
    assert [r.id for r in schedule.to_verify([b, a], S, NOW)] == ["b"]
    b.verified_at = NOW - timedelta(hours=2)
    assert schedule.to_verify([b, a], S, NOW) == []
