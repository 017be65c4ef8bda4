"""Backups of the control plane as the API shows them."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from edgeplane.model.common import Input, Output

BackupKind = Literal["full", "incremental", "config"]


class BackupCreate(Input):
    kind: BackupKind = Field("full", description="full, incremental or config")


class BackupCheck(Output):
    check: str
    ok: bool
    detail: str = ""


class Backup(Output):
    id: str
    kind: BackupKind
    engine: str
    parent: str | None
    chain: list[str]
    created_at: datetime
    revision: int = Field(description="the control plane's revision the backup holds")
    size_bytes: int
    sha256: str = Field(description="of the encrypted payload, as the manifest records it")
    key_id: str = Field(description="which backup key decrypts it (a fingerprint)")
    locations: list[str] = Field(description="the targets that hold a copy")
    expires_at: datetime | None
    verified_at: datetime | None
    verify_ok: bool | None = Field(description="null: not verified yet")
    verify_message: str
    verify_checks: list[BackupCheck] = Field(default_factory=list)


class BackupList(Output):
    items: list[Backup]


class BackupTarget(Output):
    name: str
    url: str
    kinds: list[str]


class BackupStatus(Output):
    schedule: bool = Field(description="whether this control plane makes backups on schedule")
    engine: str
    key_id: str | None = Field(description="null: no backup key yet (made by the first backup)")
    targets: list[BackupTarget]
    newest: dict[str, Backup | None]
    full_every_s: float
    incremental_every_s: float
    verify_every_s: float
    retention_s: dict[str, float]


class VerifyReport(Output):
    backup: str
    ok: bool
    message: str
    checks: list[BackupCheck]
    seconds: float


def backup_view(row: Any) -> Backup:
    manifest = row.manifest or {}
    report = row.verify_report or {}
    return Backup(
        id=row.id,
        kind=row.kind,
        engine=row.engine,
        parent=row.parent_id,
        chain=list(manifest.get("chain") or []),
        created_at=row.created_at,
        revision=row.revision,
        size_bytes=row.size_bytes,
        sha256=row.sha256,
        key_id=str(manifest.get("key_id") or ""),
        locations=list(row.locations or []),
        expires_at=row.expires_at,
        verified_at=row.verified_at,
        verify_ok=row.verify_ok,
        verify_message=row.verify_message or "",
        verify_checks=[BackupCheck(**c) for c in report.get("checks") or []],
    )
