"""A backup's manifest: what it holds, when, from which revision, and how to check it.

Written as ``<id>.json`` next to the payload ``<id>.backup`` at every target. It holds no
secret: the key id is a fingerprint, row counts and digests tell nothing of the content.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from edgeplane.backup.errors import BackupError

FORMAT = 1
KINDS = ("full", "incremental", "config")
ENGINES = ("sqlite", "postgresql", "config")
_ID = re.compile(r"^(full|incremental|config)-\d{8}T\d{6}Z-[0-9a-f]{6}$")


def new_id(kind: str, now: datetime) -> str:
    return f"{kind}-{now.astimezone(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def valid_id(value: str) -> bool:
    return bool(_ID.match(value))


def payload_name(backup_id: str) -> str:
    return f"{backup_id}.backup"


def manifest_name(backup_id: str) -> str:
    return f"{backup_id}.json"


@dataclass
class Manifest:
    id: str
    kind: str
    engine: str
    created_at: datetime
    revision: int  # the control plane's revision the backup holds
    schema: str  # the database's schema revision (Alembic)
    size: int  # of the encrypted payload
    sha256: str  # of the encrypted payload
    key_id: str
    parent: str | None = None
    chain: list[str] = field(default_factory=list)  # from the full to the parent
    rows: dict[str, int] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    # the database file the backup rebuilds (SQLite), to check a restore against
    db_sha256: str | None = None
    # PostgreSQL: the WAL positions and times the backup covers (point in time)
    covers: dict[str, Any] = field(default_factory=dict)
    version: str = ""
    host: str = ""
    format: int = FORMAT

    def to_json(self) -> str:
        data = asdict(self)
        data["created_at"] = self.created_at.astimezone(UTC).isoformat()
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    def to_dict(self) -> dict[str, Any]:
        return json.loads(self.to_json())  # type: ignore[no-any-return]

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "manifest") -> Manifest:
        if not isinstance(data, dict):
            raise BackupError(f"{where} is not a JSON object")
        if data.get("format") != FORMAT:
            raise BackupError(f"{where}: format {data.get('format')!r} is not one this reads")
        for name in ("id", "kind", "engine", "created_at", "sha256", "key_id"):
            if not isinstance(data.get(name), str):
                raise BackupError(f"{where}: field {name!r} is missing or not a string")
        if not valid_id(data["id"]):
            raise BackupError(f"{where}: id {data['id']!r} is not a backup id")
        if data["kind"] not in KINDS:
            raise BackupError(f"{where}: kind {data['kind']!r} is not one of {', '.join(KINDS)}")
        if data["engine"] not in ENGINES:
            raise BackupError(f"{where}: engine {data['engine']!r} is not known")
        try:
            created = datetime.fromisoformat(data["created_at"])
        except ValueError:
            raise BackupError(f"{where}: created_at is not an ISO time") from None
        known = set(cls.__dataclass_fields__)
        values = {k: v for k, v in data.items() if k in known}
        values["created_at"] = created if created.tzinfo else created.replace(tzinfo=UTC)
        try:
            return cls(**values)
        except TypeError as exc:
            raise BackupError(f"{where}: {exc}") from None

    @classmethod
    def from_json(cls, text: str, where: str = "manifest") -> Manifest:
        try:
            data = json.loads(text)
        except ValueError:
            raise BackupError(f"{where} is not valid JSON") from None
        return cls.from_dict(data, where)
