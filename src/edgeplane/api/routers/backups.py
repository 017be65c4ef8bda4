"""Backups of the control plane: list, make, verify (restoring is ``edgeplane restore``, on
the machine, with the control plane stopped)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Response

from edgeplane.api.deps import GlobalCtx
from edgeplane.backup import service
from edgeplane.model.backups import (
    Backup,
    BackupCreate,
    BackupKind,
    BackupList,
    BackupStatus,
    VerifyReport,
)

router = APIRouter(prefix="/api/v1/backups", tags=["backups"])


@router.get("", response_model=BackupList, summary="The backups, newest first")
def list_backups(
    ctx: GlobalCtx,
    kind: BackupKind | None = None,
    refresh: bool = Query(False, description="read the targets' manifests again first"),
) -> BackupList:
    return BackupList(
        items=service.list_backups(ctx.db, ctx.actor, ctx.settings, kind=kind, refresh=refresh)
    )


@router.get("/status", response_model=BackupStatus, summary="Schedule, targets, newest backups")
def backup_status(ctx: GlobalCtx) -> BackupStatus:
    return service.status(ctx.db, ctx.actor, ctx.settings)


@router.post(
    "",
    response_model=Backup,
    status_code=201,
    summary="Make a backup now",
    responses={
        204: {"description": "a configuration backup: nothing changed since the last one"},
        502: {"description": "no target could store it (each target's reason)"},
    },
)
def create_backup(ctx: GlobalCtx, body: BackupCreate, response: Response) -> Any:
    """A full or incremental backup of the database, or a configuration backup (204 when the
    configuration did not change since the last one). Stored at every target that takes its
    kind; 502 when none could store it."""
    made = service.create_backup(ctx.db, ctx.actor, ctx.settings, body.kind)
    if made is None:
        return Response(status_code=204)
    return made


@router.get("/{backup_id}", response_model=Backup, summary="One backup (or `latest`)")
def get_backup(ctx: GlobalCtx, backup_id: str) -> Backup:
    return service.get_backup(ctx.db, ctx.actor, backup_id)


@router.post("/{backup_id}/verify", response_model=VerifyReport, summary="Verify a backup now")
def verify_backup(ctx: GlobalCtx, backup_id: str) -> dict[str, Any]:
    """Every copy's checksum, then a restore into a scratch instance with its checks."""
    return service.verify_backup(ctx.db, ctx.actor, ctx.settings, backup_id)
