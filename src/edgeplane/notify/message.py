"""A notification and its renderings: the webhook's JSON, the email, the Slack-compatible body.

Times are written in ISO 8601 UTC (``2026-01-31T12:00:00Z``; a naive time is taken as UTC).
An email's ``Message-ID`` is derived from the alert id and the event, so that the ``resolved``
mail names its ``firing`` one in ``In-Reply-To`` / ``References`` and mail clients thread them.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any, Literal

WEBHOOK_VERSION = 1
ALERT_HEADER = "X-Edgeplane-Alert"
MESSAGE_ID_DOMAIN = "alerts.edgeplane"
# Slack attachment colors: green when resolved, blue for a test or info, then amber and red.
COLORS = {"resolved": "#2eb67d", "test": "#439fe0", "info": "#439fe0", "warning": "#ecb22e"}
FIRING_COLOR = "#e01e5a"
_SAFE_ID = re.compile(r"^[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*$")

Event = Literal["firing", "resolved", "test"]


@dataclass(frozen=True, kw_only=True)
class Notification:
    """One event of one alert, as every channel renders it."""

    event: Event
    alert_id: str
    project: str
    rule: str  # the rule's name
    severity: str  # "info", "warning" or "critical"
    object_id: str  # what the alert is about, e.g. a domain
    summary: str  # one line
    started_at: datetime
    value: float | None = None
    threshold: float | None = None
    resolved_at: datetime | None = None
    details: dict[str, Any] = field(default_factory=dict)


def iso_utc(when: datetime) -> str:
    """``when`` in ISO 8601 UTC to the second, e.g. ``2026-01-31T12:00:00Z``."""
    aware = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    return aware.isoformat(timespec="seconds").replace("+00:00", "Z")


def _jsonable(value: Any) -> Any:
    """``value`` made of JSON types only: times in ISO UTC, NaN and infinities as null."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    return str(value)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def as_dict(n: Notification) -> dict[str, Any]:
    """The notification as JSON types, with ``version``: what a webhook receives."""
    out: dict[str, Any] = _jsonable(
        {
            "version": WEBHOOK_VERSION,
            "event": n.event,
            "alert_id": n.alert_id,
            "project": n.project,
            "rule": n.rule,
            "severity": n.severity,
            "object_id": n.object_id,
            "summary": n.summary,
            "value": n.value,
            "threshold": n.threshold,
            "started_at": n.started_at,
            "resolved_at": n.resolved_at,
            "details": n.details,
        }
    )
    return out


def webhook_body(n: Notification) -> bytes:
    """The webhook's body: compact UTF-8 JSON with sorted keys."""
    text = json.dumps(as_dict(n), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode()


def headline(n: Notification) -> str:
    """``[FIRING critical] downtime: shop.example.com``, ``[RESOLVED] ...``, ``[TEST] ...``."""
    tag = f"FIRING {n.severity}" if n.event == "firing" else n.event.upper()
    return _one_line(f"[{tag}] {n.rule}: {n.object_id}")


def message_id(alert_id: str, event: Event) -> str:
    """The ``Message-ID`` of the mail of ``event`` of ``alert_id``: always the same."""
    left = alert_id if _SAFE_ID.match(alert_id) and len(alert_id) <= 100 else None
    if left is None:
        left = hashlib.sha256(alert_id.encode()).hexdigest()[:32]
    return f"<{left}.{event}@{MESSAGE_ID_DOMAIN}>"


def text_lines(n: Notification) -> list[str]:
    """Every field, one ``name: value`` a line, then the details indented."""
    lines = [
        f"Summary:   {_one_line(n.summary)}",
        f"Rule:      {_one_line(n.rule)}",
        f"Severity:  {_one_line(n.severity)}",
        f"Object:    {_one_line(n.object_id)}",
        f"Project:   {_one_line(n.project)}",
        f"Value:     {_number(n.value)}",
        f"Threshold: {_number(n.threshold)}",
        f"Started:   {iso_utc(n.started_at)}",
        f"Resolved:  {iso_utc(n.resolved_at) if n.resolved_at else '-'}",
        f"Alert:     {_one_line(n.alert_id)}",
    ]
    if n.details:
        lines.append("Details:")
        for key, value in sorted(_jsonable(n.details).items()):
            shown = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
            lines.append(f"  {_one_line(key)}: {_one_line(shown)}")
    return lines


def email_message(
    n: Notification, from_address: str, to: list[str], *, now: datetime | None = None
) -> EmailMessage:
    """The mail of ``n`` from ``from_address`` to ``to``, dated ``now`` (default: now)."""
    msg = EmailMessage()
    msg["Subject"] = headline(n)
    msg["From"] = from_address
    msg["To"] = ", ".join(to)
    msg["Date"] = format_datetime((now or datetime.now(UTC)).astimezone(UTC))
    msg["Message-ID"] = message_id(n.alert_id, n.event)
    if n.event == "resolved":
        firing = message_id(n.alert_id, "firing")
        msg["In-Reply-To"] = firing
        msg["References"] = firing
    msg[ALERT_HEADER] = _one_line(n.alert_id)
    msg["Auto-Submitted"] = "auto-generated"
    intro = {
        "firing": "An alert is firing.",
        "resolved": "An alert is resolved.",
        "test": "A test notification: the channel works.",
    }[n.event]
    msg.set_content("\n".join([intro, "", *text_lines(n), ""]))
    return msg


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_body(n: Notification) -> bytes:
    """The body of a Slack-compatible incoming webhook: ``text`` (a one-line headline, then
    the fields) and one ``attachment`` colored by event and severity."""
    head = f"{headline(n)}: {_one_line(n.summary)}"
    text = "\n".join([head, *text_lines(n)[1:]])
    color = COLORS.get(n.event) or COLORS.get(n.severity, FIRING_COLOR)
    body = {
        "text": _slack_escape(text),
        "attachments": [
            {"color": color, "fallback": _slack_escape(head), "text": _slack_escape(n.summary)}
        ],
    }
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
