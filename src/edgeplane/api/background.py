"""The control plane's background work, run by ``edgeplane serve`` and ``edgeplane up``:

- the **liveness monitor** (every ``liveness_interval_s``): edge nodes whose heartbeat stopped
  or that report themselves unhealthy leave the GeoDNS answers, within ``node_timeout_s`` plus
  one interval plus the propagation of one snapshot;
- **re-verification** of verified domains (every ``reverify_interval_s`` per domain);
- the **world DNS check** of each domain's status (where it is delegated, whether it points at
  the edge), every ``WORLD_CHECK_S``;
- **edge deployment rollouts** (every ``liveness_interval_s``): timeouts, canaries that went
  offline (``edgeplane.services.rollouts``);
- **certificate renewal** and expiry alerts (``edgeplane.services.renewal``), every
  ``renew_interval_s``, then the delivery of new alerts to the webhook.

Each loop reads first and writes only on a change; network checks run outside transactions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta

from fastapi import FastAPI
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from edgeplane.services import (
    alerts,
    domain_status,
    liveness,
    renewal,
    rollouts,
    verification,
)
from edgeplane.services.actor import LOCAL, PLATFORM_PROJECT
from edgeplane.settings import Settings
from edgeplane.store.db import Database
from edgeplane.store.tables import DomainRow, EdgeNodeRow, utcnow

log = logging.getLogger("edgeplane.background")

RECHECK_EVERY_S = 60.0
WORLD_CHECK_S = 300.0


def refresh_liveness(db: Database, settings: Settings) -> bool:
    now = utcnow()
    with db.read(LOCAL, PLATFORM_PROJECT) as tx:
        nodes = list(tx.session.scalars(select(EdgeNodeRow)))
        unchanged = liveness.compute(nodes, now, settings.node_timeout_s) == sorted(
            liveness.live_ids(tx)
        )
    if unchanged:
        return False
    with db.transaction(LOCAL, PLATFORM_PROJECT) as tx:
        return liveness.refresh(tx, settings, now)


def advance_rollouts(db: Database, settings: Settings) -> int:
    """Time out and follow up edge deployment rollouts (nodes going offline, slow nodes)."""
    now = utcnow()
    with db.read(LOCAL, PLATFORM_PROJECT) as tx:
        if not rollouts.in_progress(tx):
            return 0
    with db.transaction(LOCAL, PLATFORM_PROJECT) as tx:
        return rollouts.advance(tx, settings, now)


def recheck_domains(db: Database, settings: Settings) -> int:
    """Re-verify the verified domains that are due; the number checked."""
    with db.read(LOCAL, PLATFORM_PROJECT) as tx:
        due = verification.due_for_recheck(tx, settings, utcnow())
    for _project, name, method in due:
        with db.read(LOCAL, PLATFORM_PROJECT) as tx:
            row = tx.session.get(DomainRow, name)
            if row is None:
                continue
            attempt = verification.Attempt(
                domain=name,
                method=method,
                token=str((row.verification or {}).get("token") or ""),
                expired=False,
            )
        outcome = verification.run(attempt, settings)
        with db.transaction(LOCAL, PLATFORM_PROJECT) as tx:
            verification.record_recheck(tx, name, outcome.result, settings)
        if not outcome.result.ok:
            log.warning("re-verification of %s failed: %s", name, outcome.result.reason)
    return len(due)


def check_world_dns(db: Database, settings: Settings) -> int:
    limit = utcnow() - timedelta(seconds=WORLD_CHECK_S)
    with db.read(LOCAL, PLATFORM_PROJECT) as tx:
        due = [
            (r.project_id, r.name)
            for r in tx.session.scalars(select(DomainRow))
            if not (r.checks or {}).get("checked_at")
            or datetime.fromisoformat(str(r.checks["checked_at"])) < limit
        ]
    inputs = []
    for project, domain in due:
        with db.read(LOCAL, project) as tx:
            inputs.append(domain_status.world_check_inputs(tx, domain))
    for name, ours, addresses in inputs:
        result = domain_status.check_world(name, ours, addresses, settings)
        with db.transaction(LOCAL, PLATFORM_PROJECT) as tx:
            domain_status.record_world(tx, name, result)
    return len(inputs)


def renew_certificates(db: Database, settings: Settings) -> int:
    attempted = renewal.run_once(db, settings)
    alerts.deliver_pending(db, settings, LOCAL, PLATFORM_PROJECT)
    return attempted


async def _every(interval: float, work: Callable[[], object], name: str) -> None:
    while True:
        try:
            await run_in_threadpool(work)
        except Exception:
            log.exception("%s failed", name)
        await asyncio.sleep(interval)


@contextlib.asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[None]:
    """The lifespan of a control plane that runs the background work."""
    db: Database = app.state.db
    settings: Settings = app.state.settings
    tasks = [
        asyncio.create_task(
            _every(settings.liveness_interval_s, lambda: refresh_liveness(db, settings), "liveness")
        ),
        asyncio.create_task(
            _every(
                settings.liveness_interval_s,
                lambda: advance_rollouts(db, settings),
                "edge deployment rollouts",
            )
        ),
        asyncio.create_task(
            _every(RECHECK_EVERY_S, lambda: recheck_domains(db, settings), "re-verification")
        ),
        asyncio.create_task(
            _every(WORLD_CHECK_S / 10, lambda: check_world_dns(db, settings), "world DNS check")
        ),
        asyncio.create_task(
            _every(settings.renew_interval_s, lambda: renew_certificates(db, settings), "renewal")
        ),
    ]
    try:
        yield
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
