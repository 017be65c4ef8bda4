"""Edge functions and their versions (``edgeplane.services.functions``).

``functions`` is one row per function of a project; ``function_versions`` every version made,
immutable but for its rollout state (``status``, ``phase_at``, ``error``, the times). A
version's secrets are one JSON object ``name -> value`` encrypted with the secret box
(``secrets_encrypted``); ``secret_names`` lists the names for reads that must not decrypt.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from edgeplane.store.tables import Base, Timestamps, utcnow


class FunctionRow(Timestamps, Base):
    __tablename__ = "functions"
    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(63), primary_key=True)


class FunctionVersionRow(Base):
    __tablename__ = "function_versions"
    id: Mapped[str] = mapped_column(String(63), primary_key=True)  # fnv-...
    project_id: Mapped[str] = mapped_column(String(63))
    name: Mapped[str] = mapped_column(String(63))
    version: Mapped[int] = mapped_column(Integer)
    code: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))  # of the content (see services.functions)
    size: Mapped[int] = mapped_column(Integer)  # the code's bytes
    routes: Mapped[list[Any]] = mapped_column()  # [{"pattern", "methods"}]
    env: Mapped[dict[str, Any]] = mapped_column(default=dict)
    secrets_encrypted: Mapped[str | None] = mapped_column(Text, default=None)
    secret_names: Mapped[list[str]] = mapped_column(default=list)
    limits: Mapped[dict[str, Any]] = mapped_column()  # {"timeout_ms", "memory_mb"}
    check_path: Mapped[str | None] = mapped_column(Text, default=None)
    message: Mapped[str | None] = mapped_column(Text, default=None)
    # canary / rolling / active / superseded / failed / cancelled
    status: Mapped[str] = mapped_column(String(16), index=True)
    canary_node: Mapped[str | None] = mapped_column(String(63), default=None)
    regions: Mapped[list[str]] = mapped_column(default=list)
    phase_at: Mapped[datetime | None] = mapped_column(default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    reactivates: Mapped[str | None] = mapped_column(String(63), default=None)
    changed_revision: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200), default="")
    activated_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)

    __table_args__ = (
        ForeignKeyConstraint(
            ["project_id", "name"],
            ["functions.project_id", "functions.name"],
            ondelete="CASCADE",
        ),
        UniqueConstraint("project_id", "name", "version"),
        Index("ix_function_versions_function", "project_id", "name"),
    )
