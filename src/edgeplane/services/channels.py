"""Notification channels of a project: where its alerts go (webhook, email, chat).

A channel's secrets (a webhook's HMAC key, an SMTP password, a chat webhook's URL) are stored
encrypted apart from the rest and never answered (``"set"``); ``config_of`` decrypts them for
a delivery. A new ``config`` replaces the old one whole. Changes are audited.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select

from edgeplane.errors import Conflict, NotFound
from edgeplane.model.alerting import Channel, ChannelCreate, ChannelUpdate
from edgeplane.model.enums import Role
from edgeplane.notify.channels import ChannelConfig, parse_channel, redacted, split_secrets
from edgeplane.services.common import validate
from edgeplane.store.db import Tx
from edgeplane.store.monitoring_tables import ChannelRow
from edgeplane.store.tables import utcnow


def config_of(tx: Tx, row: ChannelRow) -> ChannelConfig:
    """The channel's whole configuration, its secrets decrypted (for a delivery only)."""
    secret = json.loads(tx.secrets.decrypt(row.secrets_encrypted)) if row.secrets_encrypted else {}
    return parse_channel({**row.config, **secret})


def to_model(tx: Tx, row: ChannelRow) -> Channel:
    return Channel(
        id=row.id,
        project=row.project_id,
        name=row.name,
        kind=row.kind,
        config=redacted(config_of(tx, row)),
        enabled=row.enabled,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _store(tx: Tx, row: ChannelRow, config: ChannelConfig) -> None:
    public, secret = split_secrets(config)
    row.kind = config.kind
    row.config = public
    row.secrets_encrypted = tx.secrets.encrypt(json.dumps(secret)) if secret else None


def _row(tx: Tx, channel_id: str) -> ChannelRow:
    row = tx.session.get(ChannelRow, (tx.project, channel_id))
    if row is None:
        raise NotFound(f"notification channel {channel_id!r} not found")
    return row


def _audit(tx: Tx, action: str, before: Channel | None, after: Channel | None) -> None:
    view = after or before
    assert view is not None
    tx.record(
        action,
        "notification_channel",
        view.id,
        before.model_dump(mode="json") if before else None,
        after.model_dump(mode="json") if after else None,
    )


def create(tx: Tx, data: ChannelCreate | dict[str, Any]) -> Channel:
    tx.actor.require(tx.project, Role.EDITOR)
    spec = validate(ChannelCreate, data) if isinstance(data, dict) else data
    if tx.session.get(ChannelRow, (tx.project, spec.id)) is not None:
        raise Conflict(f"notification channel {spec.id!r} exists")
    row = ChannelRow(project_id=tx.project, id=spec.id, name=spec.name, enabled=spec.enabled)
    _store(tx, row, spec.config)
    tx.session.add(row)
    tx.session.flush()
    view = to_model(tx, row)
    _audit(tx, "create", None, view)
    return view


def update(tx: Tx, channel_id: str, data: ChannelUpdate | dict[str, Any]) -> Channel:
    tx.actor.require(tx.project, Role.EDITOR)
    spec = validate(ChannelUpdate, data) if isinstance(data, dict) else data
    row = _row(tx, channel_id)
    before = to_model(tx, row)
    if spec.name is not None:
        row.name = spec.name
    if spec.enabled is not None:
        row.enabled = spec.enabled
    if spec.config is not None:
        _store(tx, row, spec.config)
    row.updated_at = utcnow()
    tx.session.flush()
    view = to_model(tx, row)
    _audit(tx, "update", before, view)
    return view


def delete(tx: Tx, channel_id: str) -> None:
    tx.actor.require(tx.project, Role.EDITOR)
    row = _row(tx, channel_id)
    before = to_model(tx, row)
    tx.session.delete(row)
    tx.session.flush()
    _audit(tx, "delete", before, None)


def get(tx: Tx, channel_id: str) -> Channel:
    tx.actor.require(tx.project, Role.VIEWER)
    return to_model(tx, _row(tx, channel_id))


def list_channels(tx: Tx) -> list[Channel]:
    tx.actor.require(tx.project, Role.VIEWER)
    rows = tx.session.scalars(
        select(ChannelRow).where(ChannelRow.project_id == tx.project).order_by(ChannelRow.id)
    )
    return [to_model(tx, r) for r in rows]
