"""The tables of infrastructure as code: what each apply applied, the per-project apply lock,
and the latest drift check.

``iac_applies`` keeps every apply (who, when, the revision it committed, the document as
resolved, its secrets as references only, and the file it came from with the environment it
was resolved for): drift compares the live state with the newest; ``promote`` takes a source
environment's newest file. ``iac_locks`` holds one row per project while an apply runs, so a
second one waits or is refused naming the holder (``edgeplane.iac.lock``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from edgeplane.store.tables import Base, utcnow


class IacApplyRow(Base):
    __tablename__ = "iac_applies"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    revision: Mapped[int] = mapped_column(BigInteger)
    applied_at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(200))
    environment: Mapped[str | None] = mapped_column(String(63), default=None)
    # the resolved document (secrets as their references), what drift compares with
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    # the desired state it made: canonical objects by section and key (secrets as digests)
    state: Mapped[dict[str, Any]] = mapped_column(JSON)
    # the file before resolution (variables, environments), what promote resolves again
    source: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class IacLockRow(Base):
    __tablename__ = "iac_locks"
    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    holder: Mapped[str] = mapped_column(String(200))  # the actor applying
    token: Mapped[str] = mapped_column(String(64))  # this apply's own, to release only its own
    acquired_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()


class IacDriftRow(Base):
    """The newest drift check of a project's applied file: the objects changed since."""

    __tablename__ = "iac_drift"
    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    checked_at: Mapped[datetime] = mapped_column(default=utcnow)
    apply_id: Mapped[int] = mapped_column(Integer)
    objects: Mapped[int] = mapped_column(Integer, default=0)
    drifted: Mapped[list[Any]] = mapped_column(JSON, default=list)
