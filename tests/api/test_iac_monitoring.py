"""Infrastructure as code: the monitoring sections (notification channels, alert rules,
budgets) and the edge deployment, and the bundle archive download (REST and SDK). Built
through the services and the API, exported, planned and applied on SQLite and PostgreSQL: no
false drift, round trips, exact field-level plans, prune, refusals that name the object and
the field and leave the state as it was; secrets never shown."""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from api.test_edge_deploy_api import (
    DEPLOY,
    EDGE,
    add_site_domain,
    deploy,
    edge_token,
    nodes,
    ok,
    site,
    tar_of,
    upload,
)
from conftest import Api
from edgeplane.errors import Conflict, EdgeplaneError, InvalidInput, NotFound
from edgeplane.iac import refs, service
from edgeplane.iac.kinds import channels as channel_kind
from edgeplane.model.enums import Role
from edgeplane.sdk.client import Client
from edgeplane.sdk.edge_service import Archive, EdgeDeploymentService
from edgeplane.services import alert_rules, budgets, channels
from edgeplane.settings import Settings
from edgeplane.store.actor import LOCAL
from edgeplane.store.db import Database
from edgeplane.store.monitoring_tables import AlertRuleRow, BudgetRow, ChannelRow
from edgeplane.store.tables import EdgeDeploymentRow
from iac_plans import paths, sections_of, summary, unchanged

# The sections' behaviour does not depend on the database: SQLite here; the engine's locks and
# transactions are tested on both (test_iac_core.py), and the end-to-end round trip applies
# every section on PostgreSQL (tests/integration/test_iac_end_to_end.py).
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


PROJECT = "default"
SECTIONS = ("edge_deployment", "channels", "alert_rules", "budgets")
SHIPPED = sorted(str(r["id"]) for r in alert_rules.DEFAULT_RULES)

# Secret values: they must never appear in a plan, an export or an error.
HOOK_KEY = "hook-key-Q7zK2"
SMTP_PASSWORD = "smtp-pass-W4xP9"
SLACK_URL = "https://hooks.slack.test/services/T000/B000/tok-Z8yR3"
SECRETS = (HOOK_KEY, SMTP_PASSWORD, SLACK_URL, "tok-Z8yR3")


@pytest.fixture
def settings(tmp_path: Path, db: Database) -> Settings:
    return Settings(home=tmp_path / "home", database_url=db.url)


# Helpers ----------------------------------------------------------------------------------


def export(db: Database, settings: Settings) -> dict[str, Any]:
    return service.export(db, LOCAL, PROJECT, settings)


def plan(db: Database, settings: Settings, doc: dict[str, Any], prune: bool = False) -> Any:
    return service.plan(db, LOCAL, PROJECT, settings, doc, prune=prune)


def apply(db: Database, settings: Settings, doc: dict[str, Any], prune: bool = False) -> Any:
    return service.apply(db, LOCAL, PROJECT, settings, doc, prune=prune)


def resolved(doc: dict[str, Any], environ: dict[str, str], base: Path) -> dict[str, Any]:
    """The document as the client sends it: every secret reference with its value."""
    out: dict[str, Any] = refs.resolve(copy.deepcopy(doc), base, environ)
    return out


def shown(*docs: Any) -> str:
    return json.dumps(docs, default=str)


def assert_no_secret(*docs: Any) -> None:
    text = shown(*docs)
    for value in SECRETS:
        assert value not in text, value


def revision(db: Database) -> int:
    return db.current_revision()


def count(db: Database, row: Any) -> int:
    with db.read(LOCAL, PROJECT) as tx:
        return int(tx.session.scalar(select(func.count()).select_from(row)) or 0)


def stored(db: Database, channel_id: str) -> Any:
    """A channel's whole configuration as the service decrypts it."""
    with db.read(LOCAL, PROJECT) as tx:
        row = tx.session.get(ChannelRow, (PROJECT, channel_id))
        assert row is not None
        return channels.config_of(tx, row)


def refused(call: Any, kind: type[EdgeplaneError] = InvalidInput) -> EdgeplaneError:
    with pytest.raises(kind) as info:
        call()
    return info.value


# Notification channels ----------------------------------------------------------------------

# The placeholders export writes for the channels' secrets, and the values they stand for.
PLACEHOLDERS = {
    "EDGEPLANE_SECRET_CHANNELS_HOOK_SECRET": HOOK_KEY,
    "EDGEPLANE_SECRET_CHANNELS_MAIL_PASSWORD": SMTP_PASSWORD,
    "EDGEPLANE_SECRET_CHANNELS_CHAT_URL": SLACK_URL,
}


def build_channels(db: Database) -> None:
    with db.transaction(LOCAL, PROJECT) as tx:
        channels.create(
            tx,
            {
                "id": "hook",
                "name": "Ops webhook",
                "config": {
                    "kind": "webhook",
                    "url": "https://ops.example.com/hook",
                    "secret": HOOK_KEY,
                    "headers": {"X-Team": "ops"},
                },
            },
        )
        channels.create(
            tx,
            {
                "id": "mail",
                "name": "On-call mail",
                "config": {
                    "kind": "email",
                    "smtp_host": "smtp.example.com",
                    "smtp_port": 587,
                    "security": "starttls",
                    "username": "alerts",
                    "password": SMTP_PASSWORD,
                    "from_address": "Alerts <alerts@example.com>",
                    "to": ["a@example.com", "b@example.com"],
                },
                "enabled": False,
            },
        )
        channels.create(
            tx, {"id": "chat", "name": "Chat", "config": {"kind": "slack", "url": SLACK_URL}}
        )
        channels.create(
            tx,
            {
                "id": "plain",
                "name": "Unsigned hook",
                "config": {"kind": "webhook", "url": "http://10.0.0.5:8080/alerts"},
            },
        )


CHANNELS_FILE: list[dict[str, Any]] = [
    {
        "id": "chat",
        "name": "Chat",
        "config": {"kind": "slack", "url": {"env": "CHAT_URL"}},
    },
    {
        "id": "hook",
        "name": "Ops webhook",
        "config": {
            "kind": "webhook",
            "url": "https://ops.example.com/hook",
            "secret": {"file": "hook.key"},
            "headers": {"X-Team": "ops"},
        },
    },
    {
        "id": "mail",
        "name": "On-call mail",
        "config": {
            "kind": "email",
            "smtp_host": "smtp.example.com",
            "smtp_port": 587,
            "security": "starttls",
            "username": "alerts",
            "password": {"env": "SMTP_PASSWORD"},
            "from_address": "Alerts <alerts@example.com>",
            "to": ["a@example.com", "b@example.com"],
        },
        "enabled": False,
    },
]
FILE_ENV = {"CHAT_URL": SLACK_URL, "SMTP_PASSWORD": SMTP_PASSWORD}


def channel_file(tmp_path: Path, items: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    (tmp_path / "hook.key").write_text(HOOK_KEY)
    doc = {"version": 1, "channels": copy.deepcopy(CHANNELS_FILE if items is None else items)}
    return resolved(doc, FILE_ENV, tmp_path)


def without_secrets(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = copy.deepcopy(items)
    for item in out:
        for field in channel_kind.secret_fields(item["config"]["kind"]):
            item["config"].pop(field, None)
    return out


def test_channels_made_by_the_service_plan_as_no_change(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    build_channels(db)
    doc = export(db, settings)
    assert_no_secret(doc)
    exported = {c["id"]: c for c in doc["channels"]}
    assert sorted(exported) == ["chat", "hook", "mail", "plain"]
    assert exported["hook"]["config"]["secret"] == {"env": "EDGEPLANE_SECRET_CHANNELS_HOOK_SECRET"}
    assert exported["mail"]["config"]["password"] == {
        "env": "EDGEPLANE_SECRET_CHANNELS_MAIL_PASSWORD"
    }
    assert exported["chat"]["config"] == {
        "kind": "slack",
        "url": {"env": "EDGEPLANE_SECRET_CHANNELS_CHAT_URL"},
    }
    assert "secret" not in exported["plain"]["config"]  # none set: none written
    assert "enabled" not in exported["hook"]  # at its default

    result = plan(db, settings, resolved(sections_of(doc, ("channels",)), PLACEHOLDERS, tmp_path))
    assert unchanged(result), result.doc()

    # Another value for a secret: an update of that field, its values masked.
    other = dict(PLACEHOLDERS, EDGEPLANE_SECRET_CHANNELS_MAIL_PASSWORD="another-pass-1")
    result = plan(db, settings, resolved(sections_of(doc, ("channels",)), other, tmp_path))
    assert paths(result) == {"channels[mail]": ["update", "config.password"]}
    [field] = result.doc()["changes"][0]["fields"]
    assert field == {"path": "config.password", "before": "(secret)", "after": "(secret)"}
    assert_no_secret(result.doc())
    assert "another-pass-1" not in shown(result.doc())


def test_channels_round_trip_from_a_file(db: Database, settings: Settings, tmp_path: Path) -> None:
    doc = channel_file(tmp_path)
    before = revision(db)
    result = apply(db, settings, doc)
    assert summary(result)["create"] == 3
    assert_no_secret(result.doc())
    assert revision(db) == before + 1

    again = export(db, settings)
    assert_no_secret(again)
    assert without_secrets(again["channels"]) == without_secrets(CHANNELS_FILE)
    assert unchanged(plan(db, settings, doc))
    # The export, its placeholders given the same values, is the same state too.
    assert unchanged(
        plan(db, settings, resolved(sections_of(again, ("channels",)), PLACEHOLDERS, tmp_path))
    )
    # The service stored the values the references gave.
    assert stored(db, "hook").secret == HOOK_KEY
    assert stored(db, "chat").url == SLACK_URL


def test_channel_changes_plan_exactly_their_fields(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    apply(db, settings, channel_file(tmp_path))
    items = copy.deepcopy(CHANNELS_FILE)
    by_id = {i["id"]: i for i in items}
    by_id["chat"]["name"] = "Chat room"  # text
    by_id["hook"]["enabled"] = False  # boolean
    by_id["hook"]["config"]["headers"] = {"X-Team": "sre"}  # a map, in the config
    by_id["mail"]["config"]["to"] = ["a@example.com", "c@example.com"]  # a list
    by_id["mail"]["config"]["smtp_port"] = 465  # a number
    by_id["mail"]["config"]["password"] = {"env": "NEW_PASSWORD"}  # a secret
    env = dict(FILE_ENV, NEW_PASSWORD="new-pass-R5tY7")
    (tmp_path / "hook.key").write_text(HOOK_KEY)
    doc = resolved({"version": 1, "channels": items}, env, tmp_path)

    result = plan(db, settings, doc)
    assert paths(result) == {
        "channels[chat]": ["update", "name"],
        "channels[hook]": ["update", "config.headers.X-Team", "enabled"],
        "channels[mail]": ["update", "config.password", "config.smtp_port", "config.to[1]"],
    }
    assert "new-pass-R5tY7" not in shown(result.doc())
    assert_no_secret(result.doc())

    apply(db, settings, doc)
    assert unchanged(plan(db, settings, doc))
    mail = stored(db, "mail")
    assert mail.password == "new-pass-R5tY7" and mail.smtp_port == 465
    with db.read(LOCAL, PROJECT) as tx:
        hook = channels.get(tx, "hook")
    assert hook.enabled is False and hook.config["secret"] == "set"  # the key kept

    # A channel of another kind: the whole config changes (the service replaces it whole).
    by_id["chat"]["config"] = {"kind": "webhook", "url": "https://chat.example.com/in"}
    doc = resolved({"version": 1, "channels": items}, env, tmp_path)
    result = plan(db, settings, doc)
    assert paths(result)["channels[chat]"] == [
        "update",
        "config.headers",
        "config.kind",
        "config.url",
    ]
    assert_no_secret(result.doc())
    apply(db, settings, doc)
    assert unchanged(plan(db, settings, doc))


def test_channel_refusals_name_the_field_and_never_the_secret(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    apply(db, settings, channel_file(tmp_path))
    state = (revision(db), count(db, ChannelRow))

    def bad(change: Any, env: dict[str, str] | None = None) -> EdgeplaneError:
        new = {"id": "new", "name": "New", "config": {"kind": "slack", "url": {"env": "NEW"}}}
        items = [*copy.deepcopy(CHANNELS_FILE), new]
        change({i["id"]: i for i in items})
        doc = resolved(
            {"version": 1, "channels": items}, env or {**FILE_ENV, "NEW": SLACK_URL}, tmp_path
        )
        first = refused(lambda: plan(db, settings, doc))
        second = refused(lambda: apply(db, settings, doc))
        assert (first.message, first.field) == (second.message, second.field)
        assert_no_secret(first.message, first.extra, second.extra)
        assert (revision(db), count(db, ChannelRow)) == state
        return first

    # A secret value the service refuses: named, not shown.
    e = bad(lambda c: None, {**FILE_ENV, "NEW": "ftp://hooks.slack.test/tok-Z8yR3"})
    assert e.field == "channels[new].config.url", e.message
    assert "must be an http:// or https:// URL" in e.message
    # A public field (the item model names the channel's kind as the API does).
    e = bad(lambda c: c["mail"]["config"].update(smtp_port=0))
    assert e.field == "channels[mail].config.email.smtp_port", e.message
    # A reference the client did not resolve.
    e = bad(lambda c: c["new"]["config"].update(url={"env": "NEW", "value": None}))
    assert e.field == "channels[new].config.url", e.message
    assert "env:NEW was not resolved" in e.message
    # A plain string where the file wants a reference: the secret stays out of the file.
    e = bad(lambda c: c["new"]["config"].update(url=SLACK_URL))
    assert e.field == "channels[new].config.slack.url", e.message
    # An unknown field.
    e = bad(lambda c: c["hook"].update(colour="red"))
    assert e.field == "channels[hook].colour", e.message


def test_channels_are_deleted_only_with_prune(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    apply(db, settings, channel_file(tmp_path))
    with db.transaction(LOCAL, PROJECT) as tx:
        alert_rules.update(tx, "cpu-high", {"channels": ["chat"]})
    doc = channel_file(tmp_path, [i for i in CHANNELS_FILE if i["id"] != "chat"])
    result = plan(db, settings, doc)
    assert unchanged(result) and result.doc()["unmanaged"]["channels"] == 1
    result = plan(db, settings, doc, prune=True)
    assert paths(result)["channels[chat]"][0] == "delete"
    assert result.doc()["warnings"] == [
        "channels[chat]: alert rule cpu-high sends to this channel: it stops notifying it"
    ]
    assert_no_secret(result.doc())
    apply(db, settings, doc, prune=True)
    assert count(db, ChannelRow) == 2
    assert unchanged(plan(db, settings, doc, prune=True))


# Alert rules ------------------------------------------------------------------------------

RULE = {
    "id": "checkout-errors",
    "name": "Checkout errors",
    "series": "error_rate",
    "selector": {"domain": "shop.example.com"},
    "comparison": ">=",
    "threshold": 2.5,
    "window_s": 600,
    "for_s": 120,
    "severity": "critical",
    "channels": ["hook", "chat"],
    "description": "checkout 5xx",
}


def shipped(rule_id: str) -> dict[str, Any]:
    """A shipped rule as it ships (``services.alert_rules.DEFAULT_RULES``)."""
    return copy.deepcopy(next(r for r in alert_rules.DEFAULT_RULES if r["id"] == rule_id))


def test_an_empty_project_exports_no_shipped_rule_and_plans_them_as_no_change(
    db: Database, settings: Settings
) -> None:
    # An unchanged shipped rule is every project's: not exported; no section is left empty.
    assert export(db, settings) == {"version": 1, "project": PROJECT}
    # A file may list them as they ship: no change, pruned or not.
    listed = {"version": 1, "alert_rules": [shipped(i) for i in SHIPPED]}
    assert unchanged(plan(db, settings, listed))
    assert unchanged(plan(db, settings, listed, prune=True))
    # They are read as they ship (throughput-low disabled).
    enabled = {"version": 1, "alert_rules": [{**shipped("throughput-low"), "enabled": True}]}
    assert paths(plan(db, settings, enabled)) == {
        "alert_rules[throughput-low]": ["update", "enabled"]
    }
    # A file that manages no rule: the shipped ones are neither left alone nor pruned.
    result = plan(db, settings, {"version": 1, "alert_rules": []})
    assert unchanged(result) and result.doc()["unmanaged"] == {}
    before = revision(db)
    result = apply(db, settings, {"version": 1, "alert_rules": []}, prune=True)
    assert unchanged(result) and result.doc()["unmanaged"] == {}
    assert revision(db) == before and count(db, AlertRuleRow) == 0

    # A changed one is the project's: exported, left alone without prune, and with prune it
    # cannot go: the refusal names it and says what to do.
    with db.transaction(LOCAL, PROJECT) as tx:
        alert_rules.update(tx, "cpu-high", {"threshold": 90})
    assert [r["id"] for r in export(db, settings)["alert_rules"]] == ["cpu-high"]
    result = plan(db, settings, {"version": 1, "alert_rules": []})
    assert unchanged(result) and result.doc()["unmanaged"] == {"alert_rules": 1}
    state = (revision(db), count(db, AlertRuleRow))
    e = refused(
        lambda: apply(db, settings, {"version": 1, "alert_rules": []}, prune=True), Conflict
    )
    assert (
        e.message.startswith("alert_rules[cpu-high]: ") and "ships with the platform" in e.message
    )
    assert "enabled: false" in e.message
    assert (revision(db), count(db, AlertRuleRow)) == state


def test_rules_made_by_the_service_plan_as_no_change(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    build_channels(db)
    with db.transaction(LOCAL, PROJECT) as tx:
        alert_rules.create(tx, RULE)
        alert_rules.update(tx, "cpu-high", {"threshold": 90, "enabled": False})
    doc = export(db, settings)
    rules = {r["id"]: r for r in doc["alert_rules"]}
    # The project's own rule and the changed shipped one; not the unchanged shipped ones.
    assert sorted(rules) == ["checkout-errors", "cpu-high"]
    assert rules["checkout-errors"]["channels"] == ["chat", "hook"]  # a set, sorted
    assert rules["cpu-high"]["threshold"] == 90.0 and rules["cpu-high"]["enabled"] is False
    assert "window_s" not in rules["cpu-high"]  # at its default
    assert unchanged(plan(db, settings, sections_of(doc, ("alert_rules",))))
    # Pruned: the unchanged shipped rules are not the file's to delete.
    assert unchanged(plan(db, settings, sections_of(doc, ("alert_rules",)), prune=True))
    assert unchanged(
        plan(db, settings, resolved(sections_of(doc, SECTIONS), PLACEHOLDERS, tmp_path))
    )


def test_rules_round_trip_from_a_file(db: Database, settings: Settings, tmp_path: Path) -> None:
    # Every shipped rule as it ships, cpu-high changed, and a rule of the project's own.
    rules = [{**shipped(i), "threshold": 75.0} if i == "cpu-high" else shipped(i) for i in SHIPPED]
    rules.append({**RULE, "channels": ["chat", "hook"]})
    doc = {"version": 1, "channels": CHANNELS_FILE, "alert_rules": rules}
    (tmp_path / "hook.key").write_text(HOOK_KEY)
    doc = resolved(doc, FILE_ENV, tmp_path)
    result = apply(db, settings, doc)
    assert paths(result)["alert_rules[cpu-high]"] == ["update", "threshold"]
    assert paths(result)["alert_rules[checkout-errors]"][0] == "create"
    assert summary(result) == {"create": 4, "update": 1, "replace": 0, "delete": 0}
    again = export(db, settings)
    # The changed shipped rule and the new one, fields at their default left out.
    assert again["alert_rules"] == [
        {**RULE, "channels": ["chat", "hook"]},
        {
            "id": "cpu-high",
            "name": "CPU above 80 %",
            "series": "cpu_percent",
            "comparison": ">",
            "threshold": 75.0,
            "for_s": 300,
            "description": "Scale up (operations guide: CPU > 80 %)",
        },
    ]
    assert unchanged(plan(db, settings, doc))
    exported = resolved(sections_of(again, ("channels", "alert_rules")), PLACEHOLDERS, tmp_path)
    assert unchanged(plan(db, settings, exported))
    assert unchanged(plan(db, settings, exported, prune=True))  # the shipped rules stay
    with db.read(LOCAL, PROJECT) as tx:
        assert alert_rules.get(tx, "cpu-high").builtin is True


def test_rule_changes_plan_exactly_their_fields(
    db: Database, settings: Settings, tmp_path: Path
) -> None:
    build_channels(db)
    with db.transaction(LOCAL, PROJECT) as tx:
        alert_rules.create(tx, RULE)
    doc = sections_of(export(db, settings), ("alert_rules",))
    [rule] = doc["alert_rules"]  # the unchanged shipped rules are not exported
    assert rule["id"] == "checkout-errors"
    rule.update(
        threshold=3,  # a number (an integer where the form holds a float: the same number)
        selector={"domain": "www.example.com"},  # a map
        channels=["mail", "chat", "hook"],  # a set
        severity="warning",  # an enumeration
        for_s=0,  # back to its default (left out of an export)
        description="checkout 5xx, any",  # text
    )
    doc["alert_rules"].append({**shipped("dns-down"), "enabled": False})  # a shipped one, disabled
    result = plan(db, settings, doc)
    assert paths(result) == {
        "alert_rules[checkout-errors]": [
            "update",
            "channels",
            "description",
            "for_s",
            "selector.domain",
            "severity",
            "threshold",
        ],
        "alert_rules[dns-down]": ["update", "enabled"],
    }
    apply(db, settings, doc)
    assert unchanged(plan(db, settings, doc))
    # Changed, the shipped rule is exported.
    assert [r["id"] for r in export(db, settings)["alert_rules"]] == ["checkout-errors", "dns-down"]
    with db.read(LOCAL, PROJECT) as tx:
        got = alert_rules.get(tx, "checkout-errors")
    assert got.channels == ["chat", "hook", "mail"] and got.threshold == 3.0
    assert got.for_s == 0 and got.severity == "warning"


def test_rules_refusals_and_prune(db: Database, settings: Settings) -> None:
    build_channels(db)
    with db.transaction(LOCAL, PROJECT) as tx:
        alert_rules.create(tx, RULE)
    base = sections_of(export(db, settings), ("alert_rules",))
    state = (revision(db), count(db, AlertRuleRow))

    def bad(change: Any) -> EdgeplaneError:
        doc = copy.deepcopy(base)
        change({r["id"]: r for r in doc["alert_rules"]}, doc["alert_rules"])
        e = refused(lambda: apply(db, settings, doc))
        assert (revision(db), count(db, AlertRuleRow)) == state
        return e

    e = bad(lambda r, _: r["checkout-errors"].update(series="cpu_load"))
    assert e.field == "alert_rules[checkout-errors].series", e.message
    e = bad(lambda r, items: items.append({**shipped("cpu-high"), "window_s": 10}))
    assert e.field == "alert_rules[cpu-high].window_s", e.message
    e = bad(lambda r, items: items.append({**RULE, "id": "x", "channels": ["nowhere"]}))
    assert e.field == "alert_rules[x].channels.0", e.message
    e = bad(lambda r, items: items.append({**RULE, "id": "x", "selector": {"colour": "red"}}))
    assert e.field is not None and e.field.startswith("alert_rules[x].selector"), e.message

    # Deleting: only with prune, and only the rules of the project's own.
    doc = copy.deepcopy(base)
    doc["alert_rules"] = [r for r in doc["alert_rules"] if r["id"] != "checkout-errors"]
    result = plan(db, settings, doc)
    assert unchanged(result) and result.doc()["unmanaged"] == {"alert_rules": 1}
    assert [c["key"] for c in plan(db, settings, doc, prune=True).doc()["changes"]] == [
        "checkout-errors"
    ]
    apply(db, settings, doc, prune=True)
    with db.read(LOCAL, PROJECT) as tx:
        assert tx.session.get(AlertRuleRow, (PROJECT, "checkout-errors")) is None


# Budgets ----------------------------------------------------------------------------------


def test_budgets_made_by_the_service_plan_as_no_change(db: Database, settings: Settings) -> None:
    with db.transaction(LOCAL, PROJECT) as tx:
        budgets.create(tx, {"id": "monthly", "amount": 500})
        budgets.create(
            tx, {"id": "cdn", "name": "CDN spend", "amount": 120.5, "thresholds": [100, 25, 90]}
        )
    doc = export(db, settings)
    assert doc["budgets"] == [
        {"id": "cdn", "name": "CDN spend", "amount": 120.5, "thresholds": [25, 90, 100]},
        {"id": "monthly", "amount": 500.0},  # the name is the id, the thresholds the default
    ]
    assert unchanged(plan(db, settings, sections_of(doc, ("budgets",))))


def test_budgets_round_trip_change_and_prune(db: Database, settings: Settings) -> None:
    items: list[dict[str, Any]] = [
        {"id": "cdn", "name": "CDN spend", "amount": 120.5, "thresholds": [25, 90, 100]},
        {"id": "monthly", "amount": 500.0},
    ]
    doc: dict[str, Any] = {"version": 1, "budgets": items}
    assert summary(apply(db, settings, doc))["create"] == 2
    assert export(db, settings)["budgets"] == items
    assert unchanged(plan(db, settings, doc))
    with db.read(LOCAL, PROJECT) as tx:
        assert budgets.get(tx, "monthly").name == "monthly"

    changed = copy.deepcopy(doc)
    changed["budgets"][0].update(amount=150, thresholds=[100, 50])
    changed["budgets"][1]["name"] = "All of it"
    result = plan(db, settings, changed)
    assert paths(result) == {
        "budgets[cdn]": ["update", "amount", "thresholds"],
        "budgets[monthly]": ["update", "name"],
    }
    apply(db, settings, changed)
    assert unchanged(plan(db, settings, changed))
    with db.read(LOCAL, PROJECT) as tx:
        assert budgets.get(tx, "cdn").thresholds == [50, 100]

    state = (revision(db), count(db, BudgetRow))
    for bad, field in (
        ({"id": "x", "amount": 0}, "budgets[x].amount"),
        ({"id": "x", "amount": 10, "thresholds": [2000]}, "budgets[x].thresholds"),
        ({"id": "x", "amount": "10"}, "budgets[x].amount"),
        ({"amount": 10}, "budgets[2].id"),
    ):
        wrong = {"version": 1, "budgets": [*items, bad]}
        e = refused(lambda wrong=wrong: apply(db, settings, wrong))
        assert e.field is not None and e.field.startswith(field), (e.field, e.message)
        assert (revision(db), count(db, BudgetRow)) == state

    only = {"version": 1, "budgets": changed["budgets"][:1]}
    assert unchanged(plan(db, settings, only))
    assert paths(plan(db, settings, only, prune=True))["budgets[monthly]"][0] == "delete"
    apply(db, settings, only, prune=True)
    assert count(db, BudgetRow) == 1


# Edge deployment --------------------------------------------------------------------------


@pytest.fixture
def edge(api: Api) -> Iterator[tuple[Settings, str, str]]:
    """A verified domain, a live node in eu-central and us-east, two bundles uploaded."""
    add_site_domain(api)
    nodes(api, ("eu-1", "eu-central"), ("us-1", "us-east"))
    first = upload(api, tar_of(site("v1")))["bundle"]["id"]
    second = upload(api, tar_of(site("v2")))["bundle"]["id"]
    yield Settings(home=api.tmp / "home", database_url=api.db.url), first, second


def versions(db: Database) -> int:
    return count(db, EdgeDeploymentRow)


def test_a_deployment_made_by_the_api_plans_as_no_change(
    api: Api, edge: tuple[Settings, str, str]
) -> None:
    settings, v1, _ = edge
    db = api.db
    assert "edge_deployment" not in export(db, settings)  # none yet
    deploy(
        api,
        bundle=v1,
        regions=["eu-central", "NA"],
        spa=True,
        origin_paths=["/api/", "/auth/"],
        check_path="/index.html",
    )
    doc = export(db, settings)
    assert doc["edge_deployment"] == {
        "bundle": v1,
        "regions": ["eu-central", "na"],
        "spa": True,
        "origin_paths": ["/api/", "/auth/"],
        "check_path": "/index.html",
    }
    first = doc["edge_deployment"]
    n = versions(db)
    assert unchanged(plan(db, settings, sections_of(doc, ("edge_deployment",))))
    assert versions(db) == n

    # A config update makes a version from a version: read back to the deploy's request.
    current = ok(api.get(f"{DEPLOY}/deployments/current"))
    ok(api.patch(f"{DEPLOY}/deployments/{current['id']}", json={"spa": False}), 202)
    doc = export(db, settings)
    assert doc["edge_deployment"]["regions"] == ["eu-central", "na"]
    assert "spa" not in doc["edge_deployment"]
    assert unchanged(plan(db, settings, sections_of(doc, ("edge_deployment",))))

    # Placement by the users' locations: the request, not the regions it chose.
    deploy(api, strategy="closest", locations=["DE", "US@2"], max_regions=1, latency_target_ms=80)
    doc = export(db, settings)
    assert doc["edge_deployment"] == {
        "bundle": v1,
        "strategy": "closest",
        "locations": ["DE", "US@2"],
        "latency_target_ms": 80.0,
        "max_regions": 1,
        "origin_paths": ["/api/", "/auth/"],
        "check_path": "/index.html",
    }
    assert unchanged(plan(db, settings, sections_of(doc, ("edge_deployment",))))

    # A reactivated version: read back to the request of the version it reactivates.
    ok(api.post(f"{DEPLOY}/deployments/{current['id']}/activate"), 202)
    assert export(db, settings)["edge_deployment"] == first
    assert unchanged(plan(db, settings, sections_of(export(db, settings), ("edge_deployment",))))


def test_a_deployment_from_a_file_round_trips_and_plans_start_nothing(
    api: Api, edge: tuple[Settings, str, str]
) -> None:
    settings, v1, v2 = edge
    db = api.db
    item = {"bundle": v1, "regions": ["us-east", "eu"], "origin_paths": ["/api/"]}
    doc = {"version": 1, "edge_deployment": item}
    result = plan(db, settings, doc)
    assert paths(result) == {
        "edge_deployment": [
            "create",
            "bundle",
            "locations",
            "origin_paths",
            "regions",
            "spa",
            "strategy",
        ]
    }
    assert result.doc()["warnings"] == [
        "edge_deployment: a new version rolls out to the edge: one canary node first, then "
        "every region"
    ]
    assert versions(db) == 0  # a plan starts no rollout

    before = revision(db)
    apply(db, settings, doc)
    assert revision(db) == before + 1
    current = ok(api.get(f"{DEPLOY}/deployments/current"))
    assert current["bundle"] == v1 and current["status"] == "canary"
    assert current["regions"] == ["eu-central", "us-east"]
    assert current["options"]["origin_paths"] == ["/api/"]
    exported = export(db, settings)["edge_deployment"]
    assert exported == {**item, "regions": ["eu", "us-east"]}
    assert unchanged(plan(db, settings, doc))
    assert unchanged(plan(db, settings, {"version": 1, "edge_deployment": exported}))

    # Only the serving options: a config update of the current version.
    changed: dict[str, Any] = {
        "version": 1,
        "edge_deployment": {**item, "spa": True, "check_path": "/"},
    }
    assert paths(plan(db, settings, changed)) == {
        "edge_deployment": ["update", "check_path", "spa"]
    }
    assert versions(db) == 1
    apply(db, settings, changed)
    latest = ok(api.get(f"{DEPLOY}/deployments/current"))
    assert latest["version"] == 2 and latest["options"]["spa"] is True
    with db.read(LOCAL, PROJECT) as tx:
        row = tx.session.get(EdgeDeploymentRow, latest["id"])
        assert row is not None and row.request.get("update") == current["id"]
    assert unchanged(plan(db, settings, changed))

    # Removing the check path again.
    changed["edge_deployment"].pop("check_path")
    assert paths(plan(db, settings, changed)) == {"edge_deployment": ["update", "check_path"]}
    apply(db, settings, changed)
    assert ok(api.get(f"{DEPLOY}/deployments/current"))["options"]["check_path"] is None
    assert unchanged(plan(db, settings, changed))

    # Another bundle and other regions: a deploy.
    moved: dict[str, Any] = {
        "version": 1,
        "edge_deployment": {**changed["edge_deployment"], "bundle": v2},
    }
    moved["edge_deployment"]["regions"] = ["eu-central"]
    result = plan(db, settings, moved)
    assert paths(result) == {"edge_deployment": ["update", "bundle", "regions"]}
    apply(db, settings, moved)
    latest = ok(api.get(f"{DEPLOY}/deployments/current"))
    assert latest["bundle"] == v2 and latest["regions"] == ["eu-central"]
    assert unchanged(plan(db, settings, moved))


def test_edge_deployment_refusals(api: Api, edge: tuple[Settings, str, str]) -> None:
    settings, v1, _ = edge
    db = api.db
    doc = {"version": 1, "edge_deployment": {"bundle": v1}}
    apply(db, settings, doc)
    state = (revision(db), versions(db))

    e = refused(lambda: apply(db, settings, {"version": 1, "edge_deployment": {"bundle": "site/"}}))
    assert e.field == "edge_deployment.bundle", e.message
    missing = {"version": 1, "edge_deployment": {"bundle": "0" * 64}}
    e = refused(lambda: apply(db, settings, missing), NotFound)
    assert e.field == "edge_deployment.bundle" and e.message.startswith("edge_deployment: ")
    e = refused(
        lambda: apply(db, settings, {"version": 1, "edge_deployment": {"bundle": v1, "x": 1}})
    )
    assert e.field == "edge_deployment.x", e.message
    e = refused(
        lambda: apply(
            db, settings, {"version": 1, "edge_deployment": {"bundle": v1, "regions": ["mars"]}}
        )
    )
    assert e.field == "edge_deployment.regions[0]", e.message
    assert (revision(db), versions(db)) == state

    # No undeploy: left out of the file it is left alone; removed with prune, refused.
    result = plan(db, settings, {"version": 1})
    assert unchanged(result)
    gone = {"version": 1, "edge_deployment": None}
    assert unchanged(plan(db, settings, gone))
    e = refused(lambda: apply(db, settings, gone, prune=True), Conflict)
    assert e.message.startswith("edge_deployment: ") and "no undeploy" in e.message
    assert (revision(db), versions(db)) == state


# The bundle archive: REST and SDK ----------------------------------------------------------


def test_a_bundle_archive_downloads_as_the_nodes_get_it(api: Api) -> None:
    bundle = upload(api, tar_of(site("v1")))["bundle"]
    r = api.get(f"{DEPLOY}/bundles/{bundle['id']}/archive")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/x-tar"
    assert int(r.headers["content-length"]) == bundle["size"] == len(r.content)
    assert hashlib.sha256(r.content).hexdigest() == bundle["id"]
    token = edge_token(api)
    assert api.get(f"{EDGE}/bundles/{bundle['id']}", token=token).content == r.content
    # A viewer may; another project, or no such bundle: 404.
    viewer = api.token(Role.VIEWER)
    assert api.get(f"{DEPLOY}/bundles/{bundle['id']}/archive", token=viewer).content == r.content
    ok(api.post("/api/v1/projects", json={"id": "other", "name": "Other"}), 201)
    for path in (f"{bundle['id']}/archive?project=other", f"{'0' * 64}/archive", "nope/archive"):
        r = api.get(f"{DEPLOY}/bundles/{path}")
        assert r.status_code == 404, (path, r.text)
    # Without the archive the control plane kept: from the database's slices.
    for kept in (api.tmp / "home" / "cache").rglob("*.tar"):
        kept.unlink()
    r = api.get(f"{DEPLOY}/bundles/{bundle['id']}/archive")
    assert hashlib.sha256(r.content).hexdigest() == bundle["id"]


def test_the_sdk_downloads_a_bundle(api: Api, tmp_path: Path) -> None:
    from edgeplane.sdk import embedded

    here = tmp_path / "out"
    here.mkdir()
    bundle = upload(api, tar_of(site("v1")))["bundle"]
    client = Client(Settings(home=api.tmp / "home", database_url=api.db.url))
    service_ = EdgeDeploymentService(client=client)

    async def scenario() -> None:
        try:
            out = await service_.download_bundle(bundle["id"], here / "site.tar")
            assert out == here / "site.tar"
            assert hashlib.sha256(out.read_bytes()).hexdigest() == bundle["id"]
            assert sorted(p.name for p in here.iterdir()) == ["site.tar"]
            # As the site's files: uploaded again, it is the same bundle.
            files = await service_.download_bundle(bundle["id"], here / "files.tar", site=True)
            with tarfile.open(files) as tar:
                got = {m.name: tar.extractfile(m).read() for m in tar}  # type: ignore[union-attr]
            assert got == site("v1")
            again, created = await service_.upload_archive(Archive(files, files.stat().st_size))
            assert again.id == bundle["id"] and created is False
            with pytest.raises(NotFound):
                await service_.download_bundle("0" * 64, here / "none.tar")
            assert not (here / "none.tar").exists()
            assert sorted(p.name for p in here.iterdir()) == ["files.tar", "site.tar"]
        finally:
            await client.aclose()

    try:
        asyncio.run(scenario())
    finally:
        app = embedded._apps.pop(api.db.url, None)
        if app is not None:
            app.state.db.dispose()
