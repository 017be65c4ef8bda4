"""Tables of access and secrets beyond tokens: service accounts and their roles, and the
re-encryption of stored secrets under a new primary key.

``service_accounts`` are non-human principals that own tokens (``api_tokens.service_account_id``);
their roles and scopes apply to every token they own, and disabling one stops them all.
``secret_reencryptions`` holds each re-encryption job (``edgeplane.services.secret_keys``):
the key it moves values to, its progress per encrypted column (the last primary key done, so a
job interrupted anywhere resumes where it was) and its counts.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from edgeplane.store.tables import Base, utcnow


class ServiceAccountRow(Base):
    __tablename__ = "service_accounts"
    id: Mapped[str] = mapped_column(String(63), primary_key=True)
    description: Mapped[str] = mapped_column(Text, default="")
    scopes: Mapped[list[str] | None] = mapped_column(JSON(none_as_null=True), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200))
    disabled_at: Mapped[datetime | None] = mapped_column(default=None)


class ServiceAccountRoleRow(Base):
    __tablename__ = "service_account_roles"
    account_id: Mapped[str] = mapped_column(
        ForeignKey("service_accounts.id", ondelete="CASCADE"), primary_key=True
    )
    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[str] = mapped_column(String(16))


class ReencryptionRow(Base):
    __tablename__ = "secret_reencryptions"
    id: Mapped[str] = mapped_column(String(63), primary_key=True)
    target_key: Mapped[str] = mapped_column(String(32))  # the key id values move to
    # queued / running / waiting (the runner's primary is another key) / done / failed
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    requested_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    ended_at: Mapped[datetime | None] = mapped_column(default=None)
    # "table.column" -> the last primary key done (a list), absent: not started
    progress: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    done_columns: Mapped[list[str]] = mapped_column(JSON, default=list)
    reencrypted: Mapped[int] = mapped_column(Integer, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, default=0)  # under the target already
    message: Mapped[str | None] = mapped_column(Text, default=None)
