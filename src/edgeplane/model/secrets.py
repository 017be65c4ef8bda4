"""Secrets at rest as the API shows them: the keyring's keys (ids, never the keys), how many
stored values each key encrypts, the re-encryption job, and a secret read by a user."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from edgeplane.model.common import Input, Output


class KeyInfo(Output):
    id: str = Field(description="the key's fingerprint (never the key)")
    primary: bool = Field(description="the key new values are encrypted with")
    derive: bool = Field(description="the key derived values (TLS ticket keys) come from")
    values: int = Field(description="stored values encrypted with this key")


class Reencryption(Output):
    id: str
    target_key: str
    status: Literal["queued", "running", "waiting", "done", "failed"]
    requested_by: str
    created_at: datetime
    started_at: datetime | None = None
    ended_at: datetime | None = None
    reencrypted: int = 0
    unchanged: int = 0
    columns_done: list[str] = Field(default_factory=list)
    message: str | None = None


class SecretKeyStatus(Output):
    source: Literal["file", "env"] = Field(
        description="file: $EDGEPLANE_HOME/secret.key (the API can change it); env: "
        "EDGEPLANE_SECRET_KEY (change it there and restart)"
    )
    primary: str
    keys: list[KeyInfo]
    values: int = Field(description="stored encrypted values in all")
    unreadable: int = Field(description="values no key of this replica's keyring encrypted")
    columns: dict[str, dict[str, int]] = Field(
        description='"table.column" -> key id -> values ("?": no key of the keyring)'
    )
    reencryption: Reencryption | None = Field(None, description="the newest job")


class KeyAdded(Output):
    id: str
    status: SecretKeyStatus


class ReencryptRequest(Input):
    pass


class CertificateKey(Output):
    domain: str
    certificate_id: str
    key_pem: str = Field(description="the private key (PEM); this read is audited")
