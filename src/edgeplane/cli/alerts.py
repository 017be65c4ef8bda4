"""``edgeplane alert``: alerts (incidents and events), alert rules, notification channels and
silences of the project."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from edgeplane.cli import options as o
from edgeplane.cli import output
from edgeplane.cli import runtime as rt
from edgeplane.cli.output import Column, Doc

API = "/api/v1/alerts"
app = typer.Typer(help="Alerts, alert rules, notification channels and silences.")
rule_app = typer.Typer(help="Alert rules: a series compared with a threshold, per object.")
channel_app = typer.Typer(help="Where alerts go: webhook, email (SMTP), Slack-compatible chat.")
silence_app = typer.Typer(help="Silences: no notification for matching alerts for a while.")
app.add_typer(rule_app, name="rule")
app.add_typer(channel_app, name="channel")
app.add_typer(silence_app, name="silence")

ALERT_COLUMNS: list[Column] = [
    ("ID", "id"),
    ("STATE", lambda a: a["state"] + (" (silenced)" if a.get("silenced") else "")),
    ("SEVERITY", "severity"),
    ("RULE", lambda a: a.get("rule") or a["kind"]),
    ("OBJECT", "object_id"),
    ("STARTED", "started_at"),
    ("RESOLVED", "resolved_at"),
    ("ACK", "acknowledged_by"),
    ("MESSAGE", "message"),
]
RULE_COLUMNS: list[Column] = [
    ("ID", "id"),
    ("ON", "enabled"),
    ("CONDITION", lambda r: f"{r['series']} {r['comparison']} {r['threshold']:g}"),
    ("SELECTOR", lambda r: ", ".join(f"{k}={v}" for k, v in r["selector"].items()) or "all"),
    ("WINDOW s", "window_s"),
    ("FOR s", "for_s"),
    ("SEVERITY", "severity"),
    ("FIRING", "firing"),
    ("PENDING", "pending"),
]
CHANNEL_COLUMNS: list[Column] = [
    ("ID", "id"),
    ("KIND", "kind"),
    ("NAME", "name"),
    ("ON", "enabled"),
    ("WHERE", lambda c: c["config"].get("url") or ", ".join(c["config"].get("to", []))),
]
SILENCE_COLUMNS: list[Column] = [
    ("ID", "id"),
    ("ACTIVE", "active"),
    ("RULE", "rule"),
    ("OBJECT", "object"),
    ("SEVERITY", "severity"),
    ("ENDS", "ends_at"),
    ("COMMENT", "comment"),
]
NOTE_COLUMNS: list[Column] = [
    ("CHANNEL", "channel"),
    ("EVENT", "event"),
    ("STATUS", "status"),
    ("ATTEMPTS", "attempts"),
    ("DELIVERED", "delivered_at"),
    ("ERROR", "last_error"),
]


@app.command("list")
def alert_list(
    ctx: typer.Context,
    state: Annotated[str | None, typer.Option("--state", help="firing or resolved")] = None,
    rule: Annotated[str | None, typer.Option("--rule", help="a rule id")] = None,
    kind: Annotated[str | None, typer.Option("--kind", help="rule, budget, ...")] = None,
    limit: Annotated[int, typer.Option("--limit")] = 50,
    as_json: o.Json = False,
) -> None:
    """Alerts, newest first."""
    params = rt.compact(state=state, rule=rule, kind=kind, limit=limit)
    rt.listing(ctx, as_json, API, ALERT_COLUMNS, title="alerts", params=params)


@app.command("show")
def alert_show(ctx: typer.Context, alert_id: str, as_json: o.Json = False) -> None:
    """One alert and its notifications, with every delivery attempt."""

    def render(doc: Doc) -> None:
        output.details(doc["alert"], title="alert")
        output.table(doc["notifications"], NOTE_COLUMNS, title="notifications")

    async def both(c: Any) -> Doc:
        return {
            "alert": await c.request("GET", f"{API}/{alert_id}"),
            "notifications": await c.request("GET", f"{API}/{alert_id}/notifications"),
        }

    rt.emit(rt.call(ctx, both), as_json, render)


@app.command("ack")
def alert_ack(ctx: typer.Context, alert_id: str, as_json: o.Json = False) -> None:
    """Acknowledge an alert: someone is on it."""
    rt.request(ctx, as_json, "POST", f"{API}/{alert_id}/acknowledge", title="alert")


# Rules ------------------------------------------------------------------------------------


@rule_app.command("list")
def rule_list(ctx: typer.Context, as_json: o.Json = False) -> None:
    """The project's rules (the shipped defaults included)."""
    rt.listing(ctx, as_json, f"{API}/rules", RULE_COLUMNS, title="alert rules")


@rule_app.command("create")
def rule_create(
    ctx: typer.Context,
    rule_id: str,
    series: Annotated[str, typer.Option("--series", help="edgeplane metrics list")],
    condition: Annotated[
        str, typer.Option("--when", help="comparison and threshold, e.g. '> 80' or '<= 99.8'")
    ],
    name: o.Name = None,
    select: Annotated[
        list[str] | None, typer.Option("--select", metavar="KEY=VALUE", help="e.g. domain=x")
    ] = None,
    window: Annotated[int | None, typer.Option("--window", help="seconds (>= 60)")] = None,
    for_s: Annotated[int | None, typer.Option("--for", help="seconds it must hold")] = None,
    severity: Annotated[str | None, typer.Option("--severity")] = None,
    channel: Annotated[list[str] | None, typer.Option("--channel", help="repeatable")] = None,
    as_json: o.Json = False,
) -> None:
    """Create a rule: ``edgeplane alert rule create busy --series cpu_percent --when '> 90'``."""
    comparison, threshold = _condition(condition)
    body = rt.compact(
        id=rule_id,
        name=name or rule_id,
        series=series,
        comparison=comparison,
        threshold=threshold,
        selector=rt.pairs(select, "--select") if select else None,
        window_s=window,
        for_s=for_s,
        severity=severity,
        channels=channel,
    )
    rt.request(ctx, as_json, "POST", f"{API}/rules", body=body, title="alert rule")


def _condition(text: str) -> tuple[str, Any]:
    for op in (">=", "<=", "==", "!=", ">", "<"):
        if text.strip().startswith(op):
            return op, rt.parse_scalar(text.strip()[len(op) :].strip())
    raise typer.BadParameter(f"{text!r}: start with >, >=, <, <=, == or !=", param_hint="--when")


@rule_app.command("set")
def rule_set(
    ctx: typer.Context,
    rule_id: str,
    condition: Annotated[str | None, typer.Option("--when")] = None,
    window: Annotated[int | None, typer.Option("--window")] = None,
    for_s: Annotated[int | None, typer.Option("--for")] = None,
    severity: Annotated[str | None, typer.Option("--severity")] = None,
    enable: Annotated[bool | None, typer.Option("--enable/--disable")] = None,
    as_json: o.Json = False,
) -> None:
    """Change a rule (the shipped ones too)."""
    comparison, threshold = _condition(condition) if condition else (None, None)
    body = rt.compact(
        comparison=comparison,
        threshold=threshold,
        window_s=window,
        for_s=for_s,
        severity=severity,
        enabled=enable,
    )
    rt.request(ctx, as_json, "PATCH", f"{API}/rules/{rule_id}", body=body, title="alert rule")


@rule_app.command("delete")
def rule_delete(ctx: typer.Context, rule_id: str, as_json: o.Json = False) -> None:
    rt.delete(ctx, as_json, f"{API}/rules/{rule_id}", "alert rule", rule_id)


# Channels ---------------------------------------------------------------------------------


def _secret(env: str | None, file: Path | None, option: str) -> str | None:
    """A secret from an environment variable or a file, never from the command line."""
    if env is not None:
        value = os.environ.get(env)
        if not value:
            rt.fail(f"{option}: the environment variable {env} is not set")
        return value
    if file is not None:
        try:
            return file.read_text().strip()
        except OSError as exc:
            rt.fail(f"{option} {file}: {exc.strerror or exc}")
    return None


@channel_app.command("list")
def channel_list(ctx: typer.Context, as_json: o.Json = False) -> None:
    rt.listing(ctx, as_json, f"{API}/channels", CHANNEL_COLUMNS, title="notification channels")


@channel_app.command("create")
def channel_create(
    ctx: typer.Context,
    channel_id: str,
    webhook: Annotated[str | None, typer.Option("--webhook", help="a URL to POST to")] = None,
    slack: Annotated[
        str | None, typer.Option("--slack", help="a Slack-compatible incoming webhook URL")
    ] = None,
    email: Annotated[
        list[str] | None, typer.Option("--email", help="a recipient; repeatable")
    ] = None,
    smtp: Annotated[
        str | None, typer.Option("--smtp", help="host[:port] of the SMTP server")
    ] = None,
    sender: Annotated[str | None, typer.Option("--from", help="the sender address")] = None,
    security: Annotated[str | None, typer.Option("--security", help="none, starttls, tls")] = None,
    username: Annotated[str | None, typer.Option("--username")] = None,
    secret_env: Annotated[
        str | None,
        typer.Option(
            "--secret-env", help="variable holding the webhook's HMAC key / SMTP password"
        ),
    ] = None,
    secret_file: Annotated[
        Path | None, typer.Option("--secret-file", help="file holding it")
    ] = None,
    name: o.Name = None,
    as_json: o.Json = False,
) -> None:
    """Create a channel: ``--webhook URL``, ``--slack URL`` or ``--email ADDRESS --smtp HOST
    --from ADDRESS``; secrets come from ``--secret-env`` or ``--secret-file``."""
    given = [k for k, v in (("--webhook", webhook), ("--slack", slack), ("--email", email)) if v]
    if len(given) != 1:
        rt.fail("give one of --webhook, --slack or --email")
    secret = _secret(secret_env, secret_file, "--secret-env" if secret_env else "--secret-file")
    config: Doc
    if webhook:
        config = rt.compact(kind="webhook", url=webhook, secret=secret)
    elif slack:
        config = {"kind": "slack", "url": slack}
    else:
        if not smtp or not sender:
            rt.fail("--email needs --smtp HOST[:PORT] and --from ADDRESS")
        host, _, port = smtp.partition(":")
        config = rt.compact(
            kind="email",
            smtp_host=host,
            smtp_port=int(port) if port.isdigit() else None,
            security=security,
            username=username,
            password=secret,
            from_address=sender,
            to=email,
        )
    body = {"id": channel_id, "name": name or channel_id, "config": config}
    rt.request(ctx, as_json, "POST", f"{API}/channels", body=body, title="channel")


@channel_app.command("test")
def channel_test(ctx: typer.Context, channel_id: str, as_json: o.Json = False) -> None:
    """Send a test message through the channel now."""
    rt.request(ctx, as_json, "POST", f"{API}/channels/{channel_id}/test", title="test message")


@channel_app.command("delete")
def channel_delete(ctx: typer.Context, channel_id: str, as_json: o.Json = False) -> None:
    rt.delete(ctx, as_json, f"{API}/channels/{channel_id}", "channel", channel_id)


# Silences ---------------------------------------------------------------------------------


@silence_app.command("create")
def silence_create(
    ctx: typer.Context,
    duration: Annotated[int, typer.Option("--for", help="seconds")] = 3600,
    rule: Annotated[str | None, typer.Option("--rule")] = None,
    obj: Annotated[str | None, typer.Option("--object", help="'*' wildcards allowed")] = None,
    severity: Annotated[str | None, typer.Option("--severity")] = None,
    comment: Annotated[str | None, typer.Option("--comment")] = None,
    as_json: o.Json = False,
) -> None:
    """Silence matching alerts for a while (from now)."""
    body = rt.compact(rule=rule, object=obj, severity=severity, duration_s=duration,
                      comment=comment)  # fmt: skip
    rt.request(ctx, as_json, "POST", f"{API}/silences", body=body, title="silence")


@silence_app.command("list")
def silence_list(
    ctx: typer.Context,
    active: Annotated[bool, typer.Option("--active", help="only those in force")] = False,
    as_json: o.Json = False,
) -> None:
    rt.listing(
        ctx, as_json, f"{API}/silences", SILENCE_COLUMNS, title="silences",
        params={"active": "true"} if active else None,
    )  # fmt: skip


@silence_app.command("expire")
def silence_expire(ctx: typer.Context, silence_id: str, as_json: o.Json = False) -> None:
    """End a silence now."""
    rt.request(ctx, as_json, "DELETE", f"{API}/silences/{silence_id}", title="silence")
