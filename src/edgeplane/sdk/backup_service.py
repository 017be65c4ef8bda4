"""``BackupService``: the control plane's backups (platform admins): list, make, verify.
Restoring is ``edgeplane.backup.restore.restore`` (``edgeplane restore``), on the machine."""

from __future__ import annotations

from edgeplane.model.backups import Backup, BackupList, BackupStatus, VerifyReport
from edgeplane.sdk.service import ProjectService

BASE = "/api/v1/backups"


class BackupService(ProjectService):
    """Backups, embedded or against a control plane (``EDGEPLANE_URL``)."""

    async def list(self, kind: str | None = None, *, refresh: bool = False) -> list[Backup]:
        """Newest first; ``refresh`` reads the targets' manifests again first."""
        params = {"kind": kind, "refresh": "true" if refresh else None}
        doc = await self.client.request("GET", BASE, params=params)
        return BackupList.model_validate(doc).items

    async def status(self) -> BackupStatus:
        return BackupStatus.model_validate(await self.client.request("GET", f"{BASE}/status"))

    async def create(self, kind: str = "full") -> Backup | None:
        """Make a backup now (None: a configuration backup found nothing new)."""
        doc = await self.client.request("POST", BASE, json={"kind": kind})
        return Backup.model_validate(doc) if doc else None

    async def get(self, backup_id: str) -> Backup:
        return Backup.model_validate(await self.client.request("GET", f"{BASE}/{backup_id}"))

    async def verify(self, backup_id: str) -> VerifyReport:
        """Every copy's checksum, then a restore into a scratch instance and its checks."""
        doc = await self.client.request("POST", f"{BASE}/{backup_id}/verify")
        return VerifyReport.model_validate(doc)
