"""The catalog of the control plane's backups: what each backup holds, where it is stored,
and what its newest verification found.

The backups themselves (encrypted archives and their manifests) live at the backup targets
(``edgeplane.backup.targets``); this table is their index in the database, written by the
process that makes or verifies a backup, so that the API, the alert series and the drills'
RPO read it cheaply. A restored database holds the catalog as it was at its backup:
``edgeplane backup list --refresh`` reads the targets' manifests again.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from edgeplane.store.tables import Base, utcnow


class BackupRow(Base):
    __tablename__ = "backups"
    id: Mapped[str] = mapped_column(String(80), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), index=True)  # full / incremental / config
    engine: Mapped[str] = mapped_column(String(16))  # sqlite / postgresql / config
    parent_id: Mapped[str | None] = mapped_column(String(80), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    # the control plane's revision when the backup was taken (what it holds)
    revision: Mapped[int] = mapped_column(BigInteger, default=0)
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    sha256: Mapped[str] = mapped_column(String(64), default="")
    # the targets (by name) that hold a copy
    locations: Mapped[list[str]] = mapped_column(JSON, default=list)
    # the manifest as written at the targets (no secret in it)
    manifest: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    verified_at: Mapped[datetime | None] = mapped_column(default=None)
    verify_ok: Mapped[bool | None] = mapped_column(Boolean, default=None)
    verify_message: Mapped[str] = mapped_column(Text, default="")
    verify_report: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
