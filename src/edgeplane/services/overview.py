"""A project at a glance (the dashboard's overview): its domains by status, the certificates
that expire soon and the load balancer backends that are down, counted by the database rather
than by paging through every object."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, literal, select, type_coerce

from edgeplane.model.enums import Role
from edgeplane.model.overview import (
    BackendDown,
    BackendsSummary,
    CertificatesSummary,
    DomainsSummary,
    ExpiringCertificate,
    Overview,
)
from edgeplane.services import load_balancers
from edgeplane.store.db import Tx
from edgeplane.store.tables import CertificateRow, DomainRow, LoadBalancerRow, utcnow

# Certificates expiring within this many days count as "soon" (the default alert rule's 30).
SOON_DAYS = 30
# The most items listed (the counts cover them all).
LISTED = 10
STAMP = CertificateRow.__table__.c.not_after.type


def summary(tx: Tx) -> Overview:
    tx.actor.require(tx.project, Role.VIEWER)
    now = utcnow()
    by_status = dict(
        tx.session.execute(
            select(DomainRow.status, func.count())
            .where(DomainRow.project_id == tx.project)
            .group_by(DomainRow.status)
        ).all()
    )
    # Per domain, the certificate it is served with: the active one that lasts longest.
    newest = (
        select(
            CertificateRow.domain,
            # Typed as the column: SQLite keeps timestamps as text of the column's own format.
            type_coerce(func.max(CertificateRow.not_after), STAMP).label("not_after"),
        )
        .where((CertificateRow.project_id == tx.project) & (CertificateRow.status == "active"))
        .group_by(CertificateRow.domain)
        .subquery()
    )
    soon = newest.c.not_after < literal(now + timedelta(days=SOON_DAYS), STAMP)
    active = tx.session.scalar(select(func.count()).select_from(newest)) or 0
    expiring = tx.session.scalar(select(func.count()).select_from(newest).where(soon)) or 0
    rows = tx.session.execute(
        select(newest.c.domain, newest.c.not_after)
        .where(soon)
        .order_by(newest.c.not_after)
        .limit(LISTED)
    ).all()
    certs = [
        ExpiringCertificate(
            domain=domain,
            not_after=not_after,
            days_left=round((not_after - now).total_seconds() / 86400, 1),
        )
        for domain, not_after in rows
    ]
    total = down = 0
    down_list: list[BackendDown] = []
    lbs = tx.session.scalars(
        select(LoadBalancerRow.id).where(LoadBalancerRow.project_id == tx.project)
    )
    for lb_id in list(lbs):
        for health in load_balancers.backend_health(tx, lb_id):
            total += 1
            if health.state == "down":
                down += 1
                if len(down_list) < LISTED:
                    reasons = [n.reason for n in health.nodes if n.state == "down" and n.reason]
                    down_list.append(
                        BackendDown(
                            load_balancer=lb_id,
                            backend=health.backend,
                            reason=reasons[0] if reasons else "",
                        )
                    )
    return Overview(
        project=tx.project,
        domains=DomainsSummary(total=sum(by_status.values()), by_status=by_status),
        certificates=CertificatesSummary(
            active=active,
            expiring_soon=expiring,
            soon_days=SOON_DAYS,
            expiring=certs,
        ),
        backends=BackendsSummary(total=total, down=down, down_list=down_list),
    )
