"""Waking long-polls when the desired state changes.

Two sources wake the waiters: a commit made in this process (``Database.after_commit``), at
once, and a watcher that reads the revision every ``interval`` seconds while anyone waits,
which sees commits of other replicas sharing the database (PostgreSQL). Before each read
the watcher runs ``check`` when given one: the realignment of the revision counter after a
failover (``services.realign.Realigner.check``, at most once a second), so that the polls
waiting through a failover get the database's state as soon as it takes writes again.

A waiter takes ``ticket()`` *before* it checks the state and then ``wait(ticket, timeout)``:
a change between the check and the wait is never missed.

When the server stops, ``close()`` releases every waiter at once and every later ``wait``
returns at once: the long-polls answer normally (nothing new) before the server's graceful
shutdown would have to cancel them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from starlette.concurrency import run_in_threadpool

from edgeplane.store.db import Database


class RevisionNotifier:
    def __init__(
        self,
        db: Database,
        *,
        interval: float = 0.05,
        check: Callable[[], None] | None = None,
    ) -> None:
        self._db = db
        self._interval = interval
        self._check = check  # called before each read of the watcher (rate-limits itself)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event = asyncio.Event()
        self._revision = -1
        self._waiters = 0
        self._watcher: asyncio.Task[None] | None = None
        self._closed = False
        db.after_commit.append(self._on_commit)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Release every waiter now and make later waits return at once (the server stops).
        Call it from the event loop's thread."""
        self._closed = True
        self._wake()

    def _bind_loop(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop = loop
            self._event = asyncio.Event()
            self._watcher = None

    def ticket(self) -> asyncio.Event:
        self._bind_loop()
        return self._event

    def _wake(self, revision: int | None = None) -> None:
        if revision is not None:
            self._revision = max(self._revision, revision)
        event, self._event = self._event, asyncio.Event()
        event.set()

    def _on_commit(self, revision: int) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self._wake, revision)

    def _read(self) -> int:
        if self._check is not None:
            self._check()
        return self._db.current_revision()

    async def _watch(self) -> None:
        try:
            while self._waiters > 0:
                try:
                    revision = await run_in_threadpool(self._read)
                except Exception:  # the database is unreachable: keep the waiters waiting
                    revision = self._revision
                if revision > self._revision:
                    first = self._revision < 0
                    self._revision = revision
                    if not first:
                        self._wake()
                await asyncio.sleep(self._interval)
        finally:
            self._watcher = None

    async def wait(self, ticket: asyncio.Event, timeout: float) -> bool:
        """True when woken (something changed since ``ticket``, or the notifier closed), False
        after ``timeout``."""
        if ticket.is_set() or self._closed:
            return True
        self._waiters += 1
        if self._watcher is None:
            self._watcher = asyncio.get_running_loop().create_task(self._watch())
        try:
            await asyncio.wait_for(ticket.wait(), timeout)
            return True
        except TimeoutError:
            return False
        finally:
            self._waiters -= 1
