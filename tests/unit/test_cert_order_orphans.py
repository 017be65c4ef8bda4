"""Which background certificate orders are orphans (``progress.orphaned``, pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from edgeplane.certificates.acme.progress import Orphan, Seen, orphaned

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def seen(
    order_id: str,
    status: str,
    *,
    age_s: float,
    beat_s: float | None = None,
    attempts: int = 1,
    runner: str | None = "r1",
) -> Seen:
    return Seen(
        id=order_id,
        status=status,
        runner=runner,
        attempts=attempts,
        created_at=NOW - timedelta(seconds=age_s),
        heartbeat_at=None if beat_s is None else NOW - timedelta(seconds=beat_s),
    )


def test_stale_runs_and_unclaimed_orders_are_orphans_oldest_first() -> None:
    orders = [
        seen("fresh", "running", age_s=100, beat_s=2),
        seen("stale", "running", age_s=50, beat_s=16),
        seen("never-beat", "running", age_s=20),  # claimed, no heartbeat: its claim time
        seen("young-queue", "queued", age_s=1, attempts=0, runner=None),
        seen("old-queue", "queued", age_s=60, attempts=0, runner=None),
        seen("done", "valid", age_s=500, beat_s=400),
        seen("tired", "running", age_s=10, beat_s=16, attempts=3, runner="r3"),
    ]
    assert orphaned(orders, NOW, stale_s=15, queued_s=5, max_attempts=3) == [
        Orphan("old-queue", None, 0, "resume"),
        Orphan("stale", "r1", 1, "resume"),
        Orphan("never-beat", "r1", 1, "resume"),
        Orphan("tired", "r3", 3, "give_up"),
    ]


def test_the_thresholds_are_strict() -> None:
    orders = [seen("edge", "running", age_s=30, beat_s=15)]
    assert orphaned(orders, NOW, stale_s=15) == []
    assert orphaned(orders, NOW, stale_s=14.9) == [Orphan("edge", "r1", 1, "resume")]
    assert orphaned(orders, NOW, stale_s=14.9, max_attempts=1)[0].action == "give_up"
