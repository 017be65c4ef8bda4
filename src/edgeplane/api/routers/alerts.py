"""Alerts of a project (incidents of rules, events), its alert rules, notification channels
and silences."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response

from edgeplane.api.deps import Ctx
from edgeplane.model.alerting import (
    AlertRule,
    AlertRuleCreate,
    AlertRuleUpdate,
    Channel,
    ChannelCreate,
    ChannelTest,
    ChannelUpdate,
    NotificationView,
    Silence,
    SilenceCreate,
)
from edgeplane.services import alert_rules, alerts, channels, notifications, silences

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])


@router.get("", response_model=list[alerts.Alert])
def list_alerts(
    ctx: Ctx,
    kind: str | None = None,
    state: Literal["firing", "resolved"] | None = None,
    rule: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[alerts.Alert]:
    """Newest first. ``kind``: rule (incidents of alert rules), certificate_renewal_failed,
    budget."""
    with ctx.read() as tx:
        return alerts.list_alerts(tx, kind=kind, state=state, rule=rule, limit=limit)


# Rules ------------------------------------------------------------------------------------


@router.get("/rules", response_model=list[AlertRule])
def list_rules(ctx: Ctx) -> list[AlertRule]:
    """The project's rules, the shipped defaults included."""
    with ctx.read() as tx:
        return alert_rules.list_rules(tx)


@router.post("/rules", response_model=AlertRule, status_code=201)
def create_rule(ctx: Ctx, body: AlertRuleCreate) -> AlertRule:
    with ctx.write() as tx:
        return alert_rules.create(tx, body)


@router.get("/rules/{rule_id}", response_model=AlertRule)
def get_rule(ctx: Ctx, rule_id: str) -> AlertRule:
    with ctx.read() as tx:
        return alert_rules.get(tx, rule_id)


@router.patch("/rules/{rule_id}", response_model=AlertRule)
def update_rule(ctx: Ctx, rule_id: str, body: AlertRuleUpdate) -> AlertRule:
    with ctx.write() as tx:
        return alert_rules.update(tx, rule_id, body)


@router.delete("/rules/{rule_id}", status_code=204)
def delete_rule(ctx: Ctx, rule_id: str) -> Response:
    with ctx.write() as tx:
        alert_rules.delete(tx, rule_id)
    return Response(status_code=204)


# Channels ---------------------------------------------------------------------------------


@router.get("/channels", response_model=list[Channel])
def list_channels(ctx: Ctx) -> list[Channel]:
    with ctx.read() as tx:
        return channels.list_channels(tx)


@router.post("/channels", response_model=Channel, status_code=201)
def create_channel(ctx: Ctx, body: ChannelCreate) -> Channel:
    """A webhook (signed with HMAC-SHA256 when it has a secret), an email (SMTP) or a
    Slack-compatible chat webhook; secrets are write-only."""
    with ctx.write() as tx:
        return channels.create(tx, body)


@router.get("/channels/{channel_id}", response_model=Channel)
def get_channel(ctx: Ctx, channel_id: str) -> Channel:
    with ctx.read() as tx:
        return channels.get(tx, channel_id)


@router.patch("/channels/{channel_id}", response_model=Channel)
def update_channel(ctx: Ctx, channel_id: str, body: ChannelUpdate) -> Channel:
    with ctx.write() as tx:
        return channels.update(tx, channel_id, body)


@router.delete("/channels/{channel_id}", status_code=204)
def delete_channel(ctx: Ctx, channel_id: str) -> Response:
    with ctx.write() as tx:
        channels.delete(tx, channel_id)
    return Response(status_code=204)


@router.post("/channels/{channel_id}/test", response_model=ChannelTest)
def test_channel(ctx: Ctx, channel_id: str) -> ChannelTest:
    """Send a test message now; the answer says whether it was delivered (and why not)."""
    return notifications.send_test(ctx.db, ctx.actor, ctx.project, channel_id)


# Silences ---------------------------------------------------------------------------------


@router.get("/silences", response_model=list[Silence])
def list_silences(ctx: Ctx, active: bool = False) -> list[Silence]:
    with ctx.read() as tx:
        return silences.list_silences(tx, active_only=active)


@router.post("/silences", response_model=Silence, status_code=201)
def create_silence(ctx: Ctx, body: SilenceCreate) -> Silence:
    with ctx.write() as tx:
        return silences.create(tx, body)


@router.delete("/silences/{silence_id}", response_model=Silence)
def expire_silence(ctx: Ctx, silence_id: str) -> Silence:
    """End a silence now (it stays in the list, inactive)."""
    with ctx.write() as tx:
        return silences.expire(tx, silence_id)


# One alert --------------------------------------------------------------------------------


@router.get("/{alert_id}", response_model=alerts.Alert)
def get_alert(ctx: Ctx, alert_id: str) -> alerts.Alert:
    with ctx.read() as tx:
        return alerts.get(tx, alert_id)


@router.post("/{alert_id}/acknowledge", response_model=alerts.Alert)
def acknowledge(ctx: Ctx, alert_id: str) -> alerts.Alert:
    with ctx.write() as tx:
        return alerts.acknowledge(tx, alert_id)


@router.get("/{alert_id}/notifications", response_model=list[NotificationView])
def alert_notifications(ctx: Ctx, alert_id: str) -> list[NotificationView]:
    """The alert's messages to each channel and every delivery attempt."""
    with ctx.read() as tx:
        return notifications.of_alert(tx, alert_id)
