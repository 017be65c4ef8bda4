"""The pure parts of the notification senders: channel validation and redaction, the
renderings of a notification, webhook signatures and the retry schedule."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from edgeplane.notify.channels import (
    EmailChannel,
    SlackChannel,
    WebhookChannel,
    parse_channel,
    redacted,
    split_secrets,
)
from edgeplane.notify.message import (
    Notification,
    email_message,
    message_id,
    slack_body,
    webhook_body,
)
from edgeplane.notify.retry import retry_delay
from edgeplane.notify.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign, verify

STARTED = datetime(2026, 1, 31, 12, 0, 0, tzinfo=UTC)
RESOLVED = datetime(2026, 1, 31, 12, 30, 5, tzinfo=UTC)
SLACK_URL = "https://hooks.slack.test/services/T000/B000/XXXXsecretXXXX"


def notification(event: str = "firing", **kwargs: Any) -> Notification:
    fields: dict[str, Any] = {
        "event": event,
        "alert_id": "alert-1a2b3c",
        "project": "shop",
        "rule": "downtime",
        "severity": "critical",
        "object_id": "shop.example.com",
        "summary": "HTTP checks fail from 3 of 3 regions",
        "value": 3.0,
        "threshold": 2.0,
        "started_at": STARTED,
        "resolved_at": RESOLVED if event == "resolved" else None,
        "details": {"regions": ["eu", "us", "ap"], "status": 503},
    }
    fields.update(kwargs)
    return Notification(**fields)


def error_locations(caught: pytest.ExceptionInfo[ValidationError]) -> list[tuple[Any, ...]]:
    return [tuple(e["loc"]) for e in caught.value.errors()]


# -- channel validation --------------------------------------------------------------------


def test_a_webhook_url_must_be_http_or_https() -> None:
    with pytest.raises(ValidationError) as caught:
        parse_channel({"kind": "webhook", "url": "ftp://files.example.com/hook"})
    assert error_locations(caught) == [("webhook", "url")]
    assert "http:// or https://" in str(caught.value)
    assert "ftp://" in str(caught.value)


def test_a_webhook_url_needs_a_host_and_no_credentials() -> None:
    with pytest.raises(ValidationError, match="must name a host"):
        WebhookChannel(kind="webhook", url="https:///path")
    with pytest.raises(ValidationError, match="user name or password"):
        WebhookChannel(kind="webhook", url="https://user:pw@hooks.example.com/x")
    ok = WebhookChannel(kind="webhook", url="https://hooks.example.com:8443/x?y=1")
    assert ok.url == "https://hooks.example.com:8443/x?y=1"


def test_a_bad_recipient_address_is_named() -> None:
    data = {
        "kind": "email",
        "smtp_host": "smtp.example.com",
        "from_address": "Alerts <alerts@example.com>",
        "to": ["ops@example.com", "not an address"],
    }
    with pytest.raises(ValidationError) as caught:
        parse_channel(data)
    assert error_locations(caught) == [("email", "to", 1)]
    assert "'not an address' is not an email address" in str(caught.value)
    data["to"] = ["ops@example.com", "Oncall <oncall@example.com>"]
    channel = parse_channel(data)
    assert isinstance(channel, EmailChannel)
    assert channel.smtp_port == 25 and channel.security == "none"


def test_two_addresses_in_one_entry_are_refused() -> None:
    with pytest.raises(ValidationError) as caught:
        EmailChannel(
            kind="email", smtp_host="mx", from_address="a@example.com", to=["a@b.test, c@d.test"]
        )
    assert error_locations(caught) == [("to", 0)]


def test_recipients_are_one_to_fifty() -> None:
    base: dict[str, Any] = {"kind": "email", "smtp_host": "mx", "from_address": "a@example.com"}
    with pytest.raises(ValidationError) as caught:
        parse_channel({**base, "to": []})
    assert error_locations(caught) == [("email", "to")]
    with pytest.raises(ValidationError):
        parse_channel({**base, "to": [f"u{i}@example.com" for i in range(51)]})
    fifty = parse_channel({**base, "to": [f"u{i}@example.com" for i in range(50)]})
    assert isinstance(fifty, EmailChannel) and len(fifty.to) == 50


def test_smtp_port_range() -> None:
    base: dict[str, Any] = {"kind": "email", "smtp_host": "mx", "from_address": "a@example.com"}
    with pytest.raises(ValidationError) as caught:
        parse_channel({**base, "to": ["b@example.com"], "smtp_port": 65536})
    assert error_locations(caught) == [("email", "smtp_port")]


def test_an_unknown_field_is_refused() -> None:
    with pytest.raises(ValidationError) as caught:
        parse_channel({"kind": "slack", "url": SLACK_URL, "channel": "#ops"})
    assert error_locations(caught) == [("slack", "channel")]
    assert caught.value.errors()[0]["type"] == "extra_forbidden"


def test_reserved_and_malformed_headers_are_refused() -> None:
    url = "https://hooks.example.com/x"
    with pytest.raises(ValidationError) as caught:
        parse_channel({"kind": "webhook", "url": url, "headers": {"Host": "evil.test"}})
    assert error_locations(caught) == [("webhook", "headers", "Host", "[key]")]
    assert "Host is set by the sender" in str(caught.value)
    for name in ("content-type", "X-Edgeplane-Signature", "Content-Length", "Bad Name", "a:b"):
        with pytest.raises(ValidationError) as caught:
            WebhookChannel(kind="webhook", url=url, headers={name: "x"})
        assert error_locations(caught)[0][0] == "headers"
    with pytest.raises(ValidationError, match="control characters"):
        WebhookChannel(kind="webhook", url=url, headers={"X-Token": "a\r\nHost: evil"})
    with pytest.raises(ValidationError, match="given twice"):
        WebhookChannel(kind="webhook", url=url, headers={"X-A": "1", "x-a": "2"})
    ok = WebhookChannel(kind="webhook", url=url, headers={"Authorization": "Bearer abc"})
    assert ok.headers == {"Authorization": "Bearer abc"}


def test_a_slack_url_must_be_http_or_https() -> None:
    with pytest.raises(ValidationError) as caught:
        SlackChannel(kind="slack", url="javascript:alert(1)")
    assert error_locations(caught) == [("url",)]


# -- secrets -------------------------------------------------------------------------------


def test_redacted_hides_secrets_and_the_slack_path() -> None:
    hook = WebhookChannel(kind="webhook", url="https://h.example.com/x", secret="s3cr3t-hmac")
    shown = redacted(hook)
    assert shown["secret"] == "set"
    assert "s3cr3t-hmac" not in json.dumps(shown)
    assert "s3cr3t-hmac" not in repr(hook)
    assert "secret" not in redacted(WebhookChannel(kind="webhook", url="https://h.example.com"))

    mail = EmailChannel(
        kind="email",
        smtp_host="smtp.example.com",
        username="mailer",
        password="hunter2-pw",
        from_address="a@example.com",
        to=["b@example.com"],
    )
    shown = redacted(mail)
    assert shown["password"] == "set" and shown["username"] == "mailer"
    assert "hunter2-pw" not in json.dumps(shown)

    slack = SlackChannel(kind="slack", url=SLACK_URL)
    shown = redacted(slack)
    assert shown == {"kind": "slack", "url": "https://hooks.slack.test/…"}
    assert "XXXXsecretXXXX" not in json.dumps(shown) and "services" not in json.dumps(shown)


def test_split_secrets_round_trips() -> None:
    hook = WebhookChannel(
        kind="webhook", url="https://h.example.com/x", secret="k", headers={"X-A": "1"}
    )
    public, secret = split_secrets(hook)
    assert secret == {"secret": "k"}
    assert "secret" not in public and public["headers"] == {"X-A": "1"}
    assert parse_channel({**public, **secret}) == hook

    slack = SlackChannel(kind="slack", url=SLACK_URL)
    public, secret = split_secrets(slack)
    assert public == {"kind": "slack"} and secret == {"url": SLACK_URL}
    assert parse_channel({**public, **secret}) == slack

    mail = EmailChannel(kind="email", smtp_host="mx", from_address="a@x.test", to=["b@x.test"])
    public, secret = split_secrets(mail)
    assert secret == {} and "password" not in public


# -- renderings ----------------------------------------------------------------------------


def test_webhook_body_is_compact_sorted_json() -> None:
    body = webhook_body(
        notification(started_at=datetime(2026, 1, 31, 13, 0, tzinfo=timezone(timedelta(hours=1))))
    )
    data = json.loads(body)
    assert list(data) == sorted(data)
    assert b" " not in body.replace(b"HTTP checks fail from 3 of 3 regions", b"")
    assert data == {
        "version": 1,
        "event": "firing",
        "alert_id": "alert-1a2b3c",
        "project": "shop",
        "rule": "downtime",
        "severity": "critical",
        "object_id": "shop.example.com",
        "summary": "HTTP checks fail from 3 of 3 regions",
        "value": 3.0,
        "threshold": 2.0,
        "started_at": "2026-01-31T12:00:00Z",
        "resolved_at": None,
        "details": {"regions": ["eu", "us", "ap"], "status": 503},
    }


def test_webhook_body_stays_json_with_odd_values() -> None:
    naive = datetime(2026, 1, 31, 12, 0)
    body = webhook_body(
        notification(value=float("nan"), started_at=naive, details={"when": STARTED, "x": {1}})
    )
    data = json.loads(body)  # strict JSON: NaN would not parse back as null
    assert data["value"] is None
    assert data["started_at"] == "2026-01-31T12:00:00Z"
    assert data["details"] == {"when": "2026-01-31T12:00:00Z", "x": [1]}


def test_email_subjects() -> None:
    sender, to = "Alerts <alerts@example.com>", ["ops@example.com", "b@example.com"]
    firing = email_message(notification("firing"), sender, to)
    assert firing["Subject"] == "[FIRING critical] downtime: shop.example.com"
    assert firing["To"] == "ops@example.com, b@example.com"
    assert firing["From"] == sender
    resolved = email_message(notification("resolved"), sender, to)
    assert resolved["Subject"] == "[RESOLVED] downtime: shop.example.com"
    test = email_message(notification("test"), sender, to)
    assert test["Subject"] == "[TEST] downtime: shop.example.com"
    assert test["In-Reply-To"] is None


def test_email_threading_headers() -> None:
    sender, to = "alerts@example.com", ["ops@example.com"]
    firing = email_message(notification("firing"), sender, to)
    resolved = email_message(notification("resolved"), sender, to)
    assert firing["Message-ID"] == "<alert-1a2b3c.firing@alerts.edgeplane>"
    assert firing["Message-ID"] == email_message(notification("firing"), sender, to)["Message-ID"]
    assert resolved["Message-ID"] == "<alert-1a2b3c.resolved@alerts.edgeplane>"
    assert resolved["In-Reply-To"] == firing["Message-ID"]
    assert resolved["References"] == firing["Message-ID"]
    assert firing["In-Reply-To"] is None
    assert firing["X-Edgeplane-Alert"] == resolved["X-Edgeplane-Alert"] == "alert-1a2b3c"
    assert firing["Date"]


def test_a_message_id_of_an_odd_alert_id_is_still_valid() -> None:
    mid = message_id("alert with <spaces> and @", "firing")
    assert mid.startswith("<") and mid.endswith(".firing@alerts.edgeplane>")
    assert " " not in mid and mid.count("@") == 1
    assert mid == message_id("alert with <spaces> and @", "firing")


def test_email_body_has_every_field() -> None:
    msg = email_message(notification("resolved"), "a@example.com", ["b@example.com"])
    body = msg.get_content()
    for expected in (
        "HTTP checks fail from 3 of 3 regions",
        "downtime",
        "critical",
        "shop.example.com",
        "Project:   shop",
        "Value:     3",
        "Threshold: 2",
        "Started:   2026-01-31T12:00:00Z",
        "Resolved:  2026-01-31T12:30:05Z",
        "alert-1a2b3c",
        '  regions: ["eu", "us", "ap"]',
        "  status: 503",
    ):
        assert expected in body, expected


def test_newlines_cannot_inject_mail_headers() -> None:
    n = notification(object_id="x.example.com\r\nBcc: victim@example.com")
    msg = email_message(n, "a@example.com", ["b@example.com"])
    assert msg["Bcc"] is None
    assert msg["Subject"] == "[FIRING critical] downtime: x.example.com Bcc: victim@example.com"
    assert "\nBcc:" not in msg.as_string()


def test_slack_body() -> None:
    data = json.loads(slack_body(notification("firing", summary="5xx > 10% & rising")))
    head, *rest = data["text"].split("\n")
    assert head == "[FIRING critical] downtime: shop.example.com: 5xx &gt; 10% &amp; rising"
    assert "Started:   2026-01-31T12:00:00Z" in rest
    assert data["attachments"][0]["color"] == "#e01e5a"
    resolved = json.loads(slack_body(notification("resolved")))
    assert resolved["text"].startswith("[RESOLVED] downtime: shop.example.com")
    assert resolved["attachments"][0]["color"] == "#2eb67d"
    warning = json.loads(slack_body(notification("firing", severity="warning")))
    assert warning["attachments"][0]["color"] == "#ecb22e"


# -- signatures ----------------------------------------------------------------------------


def test_sign_and_verify_round_trip() -> None:
    body = webhook_body(notification())
    headers = sign("whsec-1", body, 1_700_000_000)
    assert headers[TIMESTAMP_HEADER] == "1700000000"
    assert headers[SIGNATURE_HEADER].startswith("v1=") and len(headers[SIGNATURE_HEADER]) == 67
    assert verify("whsec-1", body, headers, now=1_700_000_100)
    lower = {k.lower(): v for k, v in headers.items()}
    assert verify("whsec-1", body, lower, now=1_700_000_100)


def test_verify_refuses_tampering_and_old_timestamps() -> None:
    body = webhook_body(notification())
    headers = sign("whsec-1", body, 1_700_000_000)
    assert not verify("whsec-1", body + b" ", headers, now=1_700_000_000)
    assert not verify("whsec-2", body, headers, now=1_700_000_000)
    assert not verify("whsec-1", body, headers, now=1_700_000_301)  # too old
    assert verify("whsec-1", body, headers, now=1_700_000_300)
    assert not verify("whsec-1", body, headers, now=1_699_999_000)  # from the future
    moved = {**headers, TIMESTAMP_HEADER: "1700000100"}  # replayed with a fresh time
    assert not verify("whsec-1", body, moved, now=1_700_000_100)
    assert not verify("whsec-1", body, {SIGNATURE_HEADER: headers[SIGNATURE_HEADER]}, 1_700_000_000)
    assert not verify("whsec-1", body, {**headers, TIMESTAMP_HEADER: "-5"}, now=-5)


def test_verify_accepts_one_of_several_signatures() -> None:
    body = b'{"a":1}'
    old = sign("old", body, 100)[SIGNATURE_HEADER]
    new = sign("new", body, 100)[SIGNATURE_HEADER]
    headers = {TIMESTAMP_HEADER: "100", SIGNATURE_HEADER: f"{old}, {new}"}
    assert verify("new", body, headers, now=100)
    assert verify("old", body, headers, now=100)
    assert not verify("other", body, headers, now=100)


# -- retries -------------------------------------------------------------------------------


def test_retry_schedule() -> None:
    assert [retry_delay(n) for n in range(1, 8)] == [5, 15, 45, 135, 405, None, None]
    with pytest.raises(ValueError):
        retry_delay(0)
