"""Leases on the database, the fence they put on writes, and the runner that runs its jobs only
on the lease's holder: on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from conftest import Api
from edgeplane.services import leases
from edgeplane.services.runner import Job, Leadership, Runner
from edgeplane.store.actor import LOCAL, PLATFORM_PROJECT
from edgeplane.store.db import Database
from edgeplane.store.tables import RegionRow


@pytest.fixture
def two(database_url: str) -> Iterator[tuple[Database, Database]]:
    """Two handles on one database: two replicas."""
    a, b = Database.for_tests(database_url), Database.for_tests(database_url)
    yield a, b
    a.dispose()
    b.dispose()


def test_one_holder_at_a_time_and_a_new_epoch_at_each_new_holder(
    two: tuple[Database, Database],
) -> None:
    a, b = two
    first = leases.hold(a, "work", "a", ttl_s=0.6)
    assert first is not None and first.epoch == 1
    assert leases.hold(b, "work", "b", ttl_s=0.6) is None  # held by a
    renewed = leases.hold(a, "work", "a", ttl_s=0.6)
    assert renewed is not None and renewed.epoch == 1  # a renewal keeps the epoch
    time.sleep(0.7)  # a stops renewing: the lease expires
    taken = leases.hold(b, "work", "b", ttl_s=5)
    assert taken is not None and taken.epoch == 2
    assert leases.hold(a, "work", "a", ttl_s=5) is None
    assert not leases.release(b, dataclasses.replace(taken, epoch=1))  # not that lease any more
    assert leases.release(b, taken)
    back = leases.hold(a, "work", "a", ttl_s=5)  # released: taken at once
    assert back is not None and back.epoch == 3


def test_two_replicas_racing_for_a_free_lease_one_wins(two: tuple[Database, Database]) -> None:
    a, b = two
    results: dict[str, leases.Lease | None] = {}
    barrier = threading.Barrier(2)

    def race(db: Database, holder: str) -> None:
        barrier.wait()
        results[holder] = leases.hold(db, "race", holder, ttl_s=5)

    threads = [threading.Thread(target=race, args=(db, h)) for db, h in ((a, "a"), (b, "b"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(h for h, lease in results.items() if lease is not None) in (["a"], ["b"])


def _add_region(db: Database, code: str) -> None:
    with db.transaction(LOCAL, PLATFORM_PROJECT) as tx:
        tx.session.add(
            RegionRow(code=code, name=code, latitude=0, longitude=0, area="na", region_code="x")
        )


def _regions(db: Database) -> set[str]:
    with db.read(LOCAL, PLATFORM_PROJECT) as tx:
        return set(tx.session.scalars(select(RegionRow.code)))


def test_a_holder_that_lost_its_lease_cannot_write(two: tuple[Database, Database]) -> None:
    a, b = two
    leases.install(a)
    old = leases.hold(a, "runner", "a", ttl_s=0.3)
    assert old is not None
    with leases.fenced(old):
        _add_region(a, "fenced-ok")  # still the holder: written
    time.sleep(0.4)
    assert leases.hold(b, "runner", "b", ttl_s=5) is not None  # b takes over
    with leases.fenced(old), pytest.raises(leases.Fenced, match="held by another replica"):
        _add_region(a, "fenced-late")
    _add_region(a, "unfenced")  # other work of that process is not fenced
    assert {"fenced-ok", "unfenced"} <= _regions(b)
    assert "fenced-late" not in _regions(b)


class Replica:
    """A runner with one job that counts its runs, in a thread with its own event loop."""

    def __init__(self, db: Database, name: str, log: list[tuple[str, float, float]]) -> None:
        self.name = name
        self.log = log
        self.leadership = Leadership(db, ttl_s=0.8, renew_s=0.1, holder=name)
        self.runner = Runner([Job("count", 0.05, self._run)], leadership=self.leadership)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.call(self._start)

    async def _start(self) -> None:
        self.runner.start()

    def _run(self) -> None:
        started = time.monotonic()
        time.sleep(0.02)
        self.log.append((self.name, started, time.monotonic()))

    def call(self, fn: object) -> None:
        asyncio.run_coroutine_threadsafe(fn(), self.loop).result(10)  # type: ignore[operator]

    def stop(self) -> None:
        self.call(self.runner.stop)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    def die(self) -> None:
        """As a SIGKILL: the loop stops with the lease still held (nothing released)."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def _wait(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.02)
    raise AssertionError(f"{what}: not within {timeout} s")


def test_jobs_run_on_one_replica_and_resume_on_another_when_it_dies(
    two: tuple[Database, Database],
) -> None:
    a, b = two
    runs: list[tuple[str, float, float]] = []
    ra = Replica(a, "a", runs)
    _wait(lambda: any(r[0] == "a" for r in runs), 5, "a runs the job")
    rb = Replica(b, "b", runs)
    time.sleep(0.5)
    assert {r[0] for r in runs} == {"a"}  # b waits while a holds the lease
    died = time.monotonic()
    ra.die()
    _wait(lambda: any(r[0] == "b" for r in runs), 5, "b takes over")
    took = min(r[1] for r in runs if r[0] == "b") - died
    assert took < 0.8 + 0.1 + 0.5  # the lease's time, one renewal, scheduling
    # never two runs at once: every run of b starts after every run of a ended
    last_a = max(r[2] for r in runs if r[0] == "a")
    assert all(r[1] >= last_a for r in runs if r[0] == "b")
    rb.stop()
    assert not rb.runner.leading


def test_a_stopping_replica_hands_over_at_once(two: tuple[Database, Database]) -> None:
    a, b = two
    runs: list[tuple[str, float, float]] = []
    ra = Replica(a, "a", runs)
    _wait(lambda: ra.runner.leading, 5, "a leads")
    rb = Replica(b, "b", runs)
    ra.stop()  # releases the lease
    stopped = time.monotonic()
    _wait(lambda: rb.runner.leading, 2, "b leads")
    assert time.monotonic() - stopped < 0.8  # before the lease would have expired
    rb.stop()


def test_the_api_says_which_replica_runs_the_jobs(api: Api) -> None:
    runner = Runner([Job("nothing", 60, lambda: None)], leadership=Leadership(api.db, holder="r1"))
    api.client.app.state.runner = runner  # type: ignore[attr-defined]
    doc = api.get("/api/v1/control-plane").json()
    assert doc["leader"] is None and doc["replica"] == "r1" and doc["leading"] is False
    lease = leases.hold(api.db, "runner", "r1", ttl_s=30, info={"url": "http://cp1:8800"})
    assert lease is not None
    doc = api.get("/api/v1/control-plane").json()
    assert doc["leader"]["holder"] == "r1" and doc["leader"]["url"] == "http://cp1:8800"
    assert doc["leader"]["live"] is True and doc["leader"]["epoch"] == 1
    assert [j["name"] for j in doc["jobs"]] == ["nothing"]
