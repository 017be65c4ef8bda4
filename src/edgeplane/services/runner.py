"""The one runner of background work: periodic jobs, each in a thread, each on its own period.

A control plane (``edgeplane serve``, ``edgeplane up``) starts one ``Runner`` with its jobs
(``edgeplane.services.jobs.control_plane_jobs``) for as long as it serves; the API only starts
and stops it. Every background job of the platform goes through here, so that running each
exactly once across replicas of the control plane is a change of this module alone.

A job that fails is logged and runs again at its next period; stopping the runner cancels the
waits at once and sets ``stopping``, which the jobs that walk many items (domains, certificates)
look at between items: a job that is running finishes the item in hand and returns (each item
is its own transaction), so a stop never waits for a pass over 10,000 domains (the process
cannot exit while a job's thread runs: measured, a world DNS check of 10,000 domains offline
held a stopping control plane for minutes).

Each run is counted and timed (``edgeplane.metrics``), and ``lag`` tells how late each job is:
the time past its next due start (its last end plus its period; its last start plus its period
while it runs), 0 when on time. A job that hangs or a thread pool that is starved shows as lag.

**Once across replicas.** Given a ``Leadership``, the runner runs its jobs only while this
process holds the ``runner`` lease on the database (``edgeplane.services.leases``): every
``renew_s`` it takes or renews the lease (``ttl_s`` long); the replica that holds it runs
every job, the others wait and try again. A holder that dies (SIGKILL, a lost machine) stops
renewing: another replica takes the lease once it expires, within ``ttl_s + renew_s``, and
starts the jobs at once. A holder that finds it lost the lease (renewals failed past
``ttl_s``, or another replica holds it) stops its jobs at once, and the writes of a job still
running in a thread are refused by the fence (the lease's epoch changed). A runner that stops
releases the lease, so that another replica takes over at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool

from edgeplane import metrics
from edgeplane.services import leases
from edgeplane.store.db import Database, unavailable

log = logging.getLogger("edgeplane.background")


@dataclass(frozen=True)
class Job:
    name: str
    interval_s: float
    run: Callable[[], object]
    # what the job holds beyond a run (a child process), released when the runner stops
    close: Callable[[], object] | None = None


@dataclass
class JobTimes:
    """Monotonic times of a job's last start and end (None: not yet)."""

    started: float | None = None
    ended: float | None = None

    @property
    def running(self) -> bool:
        """Started and not ended since."""
        return self.started is not None and (self.ended is None or self.ended < self.started)


LEASE = "runner"
SLOW_STOP_S = 0.5  # a stop slower than this is logged with the jobs that were running


@dataclass
class Leadership:
    """The lease the runner's jobs run under (one holder across the replicas)."""

    db: Database
    ttl_s: float = 3.0
    renew_s: float = 1.0
    name: str = LEASE
    holder: str = ""
    info: dict[str, object] | None = None

    def __post_init__(self) -> None:
        self.holder = self.holder or leases.new_holder_id()
        leases.install(self.db)


class Runner:
    def __init__(
        self,
        jobs: list[Job],
        stopping: threading.Event | None = None,
        leadership: Leadership | None = None,
    ) -> None:
        self.jobs = list(jobs)
        self.stopping = stopping or threading.Event()  # the jobs' cue to return early
        self.leadership = leadership
        self.lease: leases.Lease | None = None  # held now (with a leadership)
        self._tasks: list[asyncio.Task[None]] = []
        self._elector: asyncio.Task[None] | None = None
        self.times = {job.name: JobTimes() for job in self.jobs}

    @property
    def leading(self) -> bool:
        """Whether this process runs the jobs now."""
        return bool(self._tasks)

    def _call(self, job: Job, lease: leases.Lease | None) -> object:
        if lease is None:
            return job.run()
        with leases.fenced(lease):
            return job.run()

    async def _every(self, job: Job, lease: leases.Lease | None = None) -> None:
        times = self.times[job.name]
        while True:
            times.started = time.monotonic()
            outcome = "ok"
            try:
                await run_in_threadpool(self._call, job, lease)
            except leases.Fenced as exc:
                outcome = "fenced"
                log.warning("%s: %s; its writes were refused", job.name, exc)
            except Exception as exc:
                outcome = "failed"
                if unavailable(exc):  # one line a run while the database is away
                    log.warning("%s failed: the database is unavailable (%s)", job.name,
                                type(exc).__name__)  # fmt: skip
                else:
                    log.exception("%s failed", job.name)
            times.ended = time.monotonic()
            metrics.job_runs.labels(job.name, outcome).inc()
            metrics.job_duration.labels(job.name).observe(times.ended - times.started)
            await asyncio.sleep(job.interval_s)

    def lag(self, now: float | None = None) -> dict[str, float]:
        """Seconds each running job is late (0: on time); jobs not started yet are left out."""
        now = time.monotonic() if now is None else now
        out: dict[str, float] = {}
        for job in self.jobs:
            t = self.times[job.name]
            if t.started is None:
                continue
            due = (t.started if t.running else t.ended or t.started) + job.interval_s
            out[job.name] = max(0.0, now - due)
        return out

    def _start_jobs(self, lease: leases.Lease | None) -> None:
        self.stopping.clear()
        self._tasks = [
            asyncio.create_task(self._every(job, lease), name=f"job {job.name}")
            for job in self.jobs
        ]

    async def _stop_jobs(self) -> None:
        self.stopping.set()
        began = time.monotonic()
        running = [name for name, t in self.times.items() if t.running]
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        took = time.monotonic() - began
        if took > SLOW_STOP_S:  # a job was running (a thread cannot be interrupted)
            log.warning(
                "the background jobs took %.2f s to stop (running: %s)",
                took,
                ", ".join(running) or "none",
            )
        self._tasks = []
        for job in self.jobs:  # what the jobs hold beyond a run (a child process)
            if job.close is not None:
                try:
                    await run_in_threadpool(job.close)
                except Exception:
                    log.exception("closing %s failed", job.name)

    async def _elect(self, leadership: Leadership) -> None:
        """Hold the lease and run the jobs while held; hand over when it is lost."""
        held_until = 0.0  # monotonic: when the lease held expires unless renewed
        while True:
            try:
                lease = await run_in_threadpool(
                    leases.hold,
                    leadership.db,
                    leadership.name,
                    leadership.holder,
                    leadership.ttl_s,
                    leadership.info,
                )
            except Exception as exc:  # the database is unreachable: keep what we have
                log.warning("could not renew the %s lease: %s", leadership.name, exc)
                lease = self.lease if time.monotonic() < held_until else None
            else:
                if lease is not None:
                    held_until = time.monotonic() + leadership.ttl_s
            if lease is not None and (self.lease is None or lease.epoch != self.lease.epoch):
                if self._tasks:
                    await self._stop_jobs()
                log.info(
                    "this replica (%s) runs the background jobs (lease epoch %d)",
                    leadership.holder,
                    lease.epoch,
                )
                metrics.leader_changes.inc()
                self.lease = lease
                self._start_jobs(lease)
            elif lease is None and self.lease is not None:
                log.warning("the %s lease was lost: background jobs stopped", leadership.name)
                self.lease = None
                await self._stop_jobs()
            await asyncio.sleep(leadership.renew_s)

    def start(self) -> None:
        if self.leadership is None:
            self._start_jobs(None)
        else:
            self._elector = asyncio.create_task(self._elect(self.leadership), name="election")

    async def stop(self) -> None:
        if self._elector is not None:
            self._elector.cancel()
            await asyncio.gather(self._elector, return_exceptions=True)
            self._elector = None
        await self._stop_jobs()
        if self.leadership is not None and self.lease is not None:
            lease, self.lease = self.lease, None
            try:
                await run_in_threadpool(leases.release, self.leadership.db, lease)
            except Exception as exc:
                log.warning("could not release the %s lease: %s", lease.name, exc)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        self.start()
        try:
            yield
        finally:
            await self.stop()
