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


class Runner:
    def __init__(self, jobs: list[Job], stopping: threading.Event | None = None) -> None:
        self.jobs = list(jobs)
        self.stopping = stopping or threading.Event()  # the jobs' cue to return early
        self._tasks: list[asyncio.Task[None]] = []
        self.times = {job.name: JobTimes() for job in self.jobs}

    async def _every(self, job: Job) -> None:
        times = self.times[job.name]
        while True:
            times.started = time.monotonic()
            outcome = "ok"
            try:
                await run_in_threadpool(job.run)
            except Exception:
                outcome = "failed"
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
            running = t.ended is None or t.ended < t.started
            due = (t.started if running else t.ended or t.started) + job.interval_s
            out[job.name] = max(0.0, now - due)
        return out

    def start(self) -> None:
        self.stopping.clear()
        self._tasks = [
            asyncio.create_task(self._every(job), name=f"job {job.name}") for job in self.jobs
        ]

    async def stop(self) -> None:
        self.stopping.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        for job in self.jobs:
            if job.close is not None:
                try:
                    await run_in_threadpool(job.close)
                except Exception:
                    log.exception("closing %s failed", job.name)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        self.start()
        try:
            yield
        finally:
            await self.stop()
