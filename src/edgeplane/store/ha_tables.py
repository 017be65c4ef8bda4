"""What several replicas of the control plane share beyond the desired state.

``leases`` holds one row per lease (``runner``: the replica that runs the background work):
who holds it, until when, and its ``epoch``, raised at each change of holder, which fences a
holder that lost it (``edgeplane.services.leases``). ``cert_orders`` holds the background
certificate orders (``POST /ssl/{domain}?wait=false``) with their progress, so that any
replica answers a poll for one and resumes one whose replica died
(``edgeplane.certificates.acme.progress``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from edgeplane.store.tables import Base, utcnow


class LeaseRow(Base):
    __tablename__ = "leases"
    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))  # "host:pid:random" of the replica
    epoch: Mapped[int] = mapped_column(Integer, default=1)  # raised at each new holder
    acquired_at: Mapped[datetime] = mapped_column(default=utcnow)
    renewed_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(default=utcnow)
    # the holder's own description: its API URL, version, jobs it runs
    info: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class CertOrderRow(Base):
    __tablename__ = "cert_orders"
    id: Mapped[str] = mapped_column(String(63), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(63), index=True)
    domain: Mapped[str] = mapped_column(String(253))
    # queued / running / valid / failed
    status: Mapped[str] = mapped_column(String(16), default="queued")
    request: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # CertificateRequest
    actor: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # who asked
    events: Mapped[list[Any]] = mapped_column(JSON, default=list)  # [{"at", "message"}]
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    error_status: Mapped[int | None] = mapped_column(Integer, default=None)
    runner: Mapped[str | None] = mapped_column(String(200), default=None)  # the replica on it
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # refreshed by the replica running it while it runs: a stale one is resumed elsewhere
    heartbeat_at: Mapped[datetime | None] = mapped_column(default=None)
    ended_at: Mapped[datetime | None] = mapped_column(default=None)
