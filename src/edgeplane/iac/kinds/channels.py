"""``channels``: the project's notification channels (webhook, email, Slack-compatible chat).

A channel's secrets (``notify.channels.SECRET_FIELDS``: a webhook's HMAC key, an SMTP
password) and its credential URLs (a Slack webhook's URL) are references in the file
(``{env: NAME}`` / ``{file: PATH}``, ``edgeplane.iac.secret``): the canonical form holds their
digests, the live ones are decrypted and digested, export writes a placeholder reference.
The values the client resolved are kept for the transaction only, by digest, until the
service stores them (encrypted); no plan, export or error shows one.
"""

from __future__ import annotations

import copy
import weakref
from typing import Annotated, Any

from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import select

from edgeplane.errors import InvalidInput
from edgeplane.iac import secret
from edgeplane.iac.kind import Context, Item, Kind, changed_fields, project_rows
from edgeplane.iac.secret import SecretRef
from edgeplane.model.alerting import ChannelCreate
from edgeplane.model.validation import invalid_from_pydantic
from edgeplane.notify.channels import (
    CREDENTIAL_URLS,
    SECRET_FIELDS,
    ChannelConfig,
    EmailChannel,
    SlackChannel,
    WebhookChannel,
)
from edgeplane.services import channels
from edgeplane.store.db import Tx
from edgeplane.store.monitoring_tables import AlertRuleRow, ChannelRow

KIND = "notification_channel"  # what services.channels audits


def secret_fields(kind: str) -> tuple[str, ...]:
    """The fields of a channel kind that are secret references in the file."""
    return (*SECRET_FIELDS[kind], *CREDENTIAL_URLS.get(kind, ()))


class WebhookConfig(WebhookChannel):
    secret: SecretRef | None = Field(  # type: ignore[assignment]
        None, description="HMAC key of the X-Edgeplane-Signature header: a secret reference"
    )


class EmailConfig(EmailChannel):
    password: SecretRef | None = Field(  # type: ignore[assignment]
        None, description="the SMTP password: a secret reference"
    )


class SlackConfig(SlackChannel):
    url: SecretRef = Field(  # type: ignore[assignment]
        description="the incoming webhook's URL (a credential): a secret reference"
    )


CONFIGS: dict[str, type[BaseModel]] = {
    "webhook": WebhookConfig,
    "email": EmailConfig,
    "slack": SlackConfig,
}
SERVICE_CONFIGS: dict[str, type[WebhookChannel | EmailChannel | SlackChannel]] = {
    "webhook": WebhookChannel,
    "email": EmailChannel,
    "slack": SlackChannel,
}
ConfigItem = Annotated[WebhookConfig | EmailConfig | SlackConfig, Field(discriminator="kind")]


def references_match() -> list[str]:
    """The fields where the item's models and ``notify.channels`` disagree on what is a
    secret (empty: every secret field, and only those, is a reference)."""
    wrong = []
    for kind, model in CONFIGS.items():
        for name, info in model.model_fields.items():
            is_ref = SecretRef in (info.annotation, *getattr(info.annotation, "__args__", ()))
            if is_ref != (name in secret_fields(kind)):
                wrong.append(f"{kind}.{name}")
    return wrong


class ChannelItem(ChannelCreate):
    """A notification channel; its secret fields are references (``{env: NAME}``)."""

    config: ConfigItem


# The values resolved by the client, by digest, for the transaction that canonicalised them.
_VALUES: weakref.WeakKeyDictionary[Tx, dict[str, str]] = weakref.WeakKeyDictionary()


def _canonical_of(channel_id: str, name: str, enabled: bool, config: ChannelConfig) -> Item:
    doc = config.model_dump(mode="json")
    for field in secret_fields(config.kind):
        doc[field] = secret.live(doc.get(field))
    return {"id": channel_id, "name": name, "config": doc, "enabled": enabled}


def _scrubbed(exc: InvalidInput, values: list[str]) -> InvalidInput:
    """The error with any secret value it might quote replaced by the mask."""

    def clean(text: str) -> str:
        for value in values:
            if value:
                text = text.replace(value, secret.MASK)
        return text

    errors = [{"field": e["field"], "reason": clean(e["reason"])} for e in exc.errors]
    return InvalidInput(clean(exc.message), field=exc.field, errors=errors)


class Channels(Kind):
    section = "channels"
    noun = "notification channel"
    item = ChannelItem
    secrets = frozenset(f"config.{f}" for kind in SECRET_FIELDS for f in secret_fields(kind))
    audit_kinds = frozenset({KIND})

    def read(self, ctx: Context) -> list[Item]:
        tx = ctx.tx
        rows = project_rows(tx, ChannelRow)
        return [
            _canonical_of(row.id, row.name, row.enabled, channels.config_of(tx, row))
            for row in rows
        ]

    def canonical(self, ctx: Context, item: BaseModel) -> Item:
        assert isinstance(item, ChannelItem)
        config = item.config
        names = secret_fields(config.kind)
        values: dict[str, str] = {}
        for field in names:
            ref = getattr(config, field)
            if ref is not None:
                values[field] = ref.required(f"config.{field}")
        public = config.model_dump(mode="json", exclude=set(names))
        try:
            parsed: ChannelConfig = SERVICE_CONFIGS[config.kind].model_validate(
                {**public, **values}
            )
        except ValidationError as exc:
            raise _scrubbed(invalid_from_pydantic(exc, "config"), list(values.values())) from None
        known = _VALUES.setdefault(ctx.tx, {})
        for value in values.values():
            known[secret.digest(value)] = value
        return _canonical_of(item.id, item.name, item.enabled, parsed)

    def exported(self, item: Item) -> Item:
        doc = copy.deepcopy(item)
        config = doc["config"]
        for field in secret_fields(config["kind"]):
            if config.get(field) is None:
                config.pop(field, None)
            else:
                config[field] = secret.placeholder(self.section, item["id"], field)
        return super().exported(doc)

    def _service_config(self, ctx: Context, channel_id: str, config: Item) -> dict[str, Any]:
        """The configuration with each secret's value in place of its digest: the value the
        file gave, else (unchanged) the live one."""
        known = _VALUES.get(ctx.tx, {})
        out = dict(config)
        live: dict[str, Any] | None = None
        for field in secret_fields(config["kind"]):
            held = config.get(field)
            if held is None:
                out.pop(field, None)
                continue
            value = known.get(held["digest"])
            if value is None:
                if live is None:
                    row = ctx.tx.session.get(ChannelRow, (ctx.tx.project, channel_id))
                    live = {} if row is None else channels.config_of(ctx.tx, row).model_dump()
                value = live.get(field)
                if value is None or secret.digest(value) != held["digest"]:
                    raise InvalidInput.at(f"config.{field}", "the secret's value was not given")
            out[field] = value
        return out

    def create(self, ctx: Context, item: Item) -> None:
        config = self._service_config(ctx, item["id"], item["config"])
        channels.create(ctx.tx, {**item, "config": config})

    def update(self, ctx: Context, before: Item, after: Item) -> None:
        patch = changed_fields(before, after)
        if "config" in patch:
            patch["config"] = self._service_config(ctx, after["id"], after["config"])
        channels.update(ctx.tx, after["id"], patch)

    def delete(self, ctx: Context, item: Item) -> None:
        channels.delete(ctx.tx, item["id"])

    def warnings(
        self, ctx: Context, action: str, before: Item | None, after: Item | None
    ) -> list[str]:
        if action != "delete" or before is None:
            return []
        tx = ctx.tx
        rules = tx.session.scalars(
            select(AlertRuleRow).where(AlertRuleRow.project_id == tx.project)
        )
        naming = sorted(r.id for r in rules if before["id"] in (r.channels or []))
        if not naming:
            return []
        return [
            f"alert rules {', '.join(naming)} send to this channel: they stop notifying it"
            if len(naming) > 1
            else f"alert rule {naming[0]} sends to this channel: it stops notifying it"
        ]
