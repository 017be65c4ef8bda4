"""The file as written, resolved (pure): variables, environment overlays, references, and the
field-level differences the plan shows."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeplane.errors import InvalidInput
from edgeplane.iac import refs, template
from edgeplane.iac.diff import fields, masked

SOURCE = {
    "version": 1,
    "project": "shop",
    "variables": {"apex": "shop.localhost", "ttl": 300, "origin": "10.0.0.1"},
    "environments": {
        "staging": {
            "project": "shop-staging",
            "variables": {"apex": "staging.shop.localhost"},
            "overlay": {
                "load_balancers": [
                    {"id": "web", "algorithm": "least_connections", "name": None},
                    {"id": "extra", "name": "only in staging"},
                ],
                "domains": [{"name": "old.localhost", "$remove": True}],
                "cdn": {"security": {"rate_limit": None}},
            },
        },
        "prod": {"project": "shop-prod"},
    },
    "domains": [
        {"name": "${apex}", "records": [{"name": "www", "type": "CNAME", "ttl": "${ttl}"}]},
        {"name": "old.localhost"},
    ],
    "load_balancers": [{"id": "web", "name": "Web at ${origin}", "algorithm": "round_robin"}],
    "cdn": {"origins": ["http://${origin}"], "security": {"rate_limit": {"rps": 10}}},
}


def test_without_an_environment_the_file_is_its_base_with_variables() -> None:
    r = template.resolve(SOURCE)
    assert r.project == "shop" and r.environment is None
    assert r.document["domains"][0]["name"] == "shop.localhost"
    # a whole "${x}" keeps the variable's type; inside a string it is text
    assert r.document["domains"][0]["records"][0]["ttl"] == 300
    assert r.document["load_balancers"][0]["name"] == "Web at 10.0.0.1"
    assert "variables" not in r.document and "environments" not in r.document


def test_an_environment_brings_its_project_variables_and_overlay() -> None:
    r = template.resolve(SOURCE, "staging")
    doc = r.document
    assert r.project == "shop-staging" and doc["project"] == "shop-staging"
    assert [d["name"] for d in doc["domains"]] == ["staging.shop.localhost"]
    web, extra = doc["load_balancers"]
    assert web == {"id": "web", "algorithm": "least_connections"}  # null removed the name
    assert extra == {"id": "extra", "name": "only in staging"}
    assert doc["cdn"] == {"origins": ["http://10.0.0.1"], "security": {}}
    prod = template.resolve(SOURCE, "prod", {"apex": "shop.example"})
    assert prod.project == "shop-prod"
    assert prod.document["domains"][0]["name"] == "shop.example"  # --var wins


def test_bad_templates_name_the_place() -> None:
    with pytest.raises(InvalidInput) as exc:
        template.resolve(SOURCE, "qa")
    assert exc.value.field == "environment" and "prod, staging" in exc.value.message
    with pytest.raises(InvalidInput) as exc:
        template.resolve({"domains": [{"name": "${nope}"}]})
    assert exc.value.field == "domains[0].name" and "${nope}" in exc.value.message
    with pytest.raises(InvalidInput) as exc:
        template.parse("domains: [\n", "shop.yaml")
    assert "shop.yaml is not valid YAML" in exc.value.message and "line" in exc.value.message
    assert template.resolve({"a": "cost: $${HOME}"}).document["a"] == "cost: ${HOME}"


def test_references_are_read_where_the_file_is(tmp_path: Path) -> None:
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "key.pem").write_text("KEY")
    doc = {
        "channels": [
            {"id": "ops", "config": {"secret": {"env": "HOOK_SECRET"}, "url": "https://x"}}
        ],
        "certificates": [{"domain": "a", "private_key": {"file": "certs/key.pem"}}],
    }
    out = refs.resolve(doc, tmp_path, {"HOOK_SECRET": "s3cr3t"})
    assert out["channels"][0]["config"]["secret"] == {"env": "HOOK_SECRET", "value": "s3cr3t"}
    assert out["certificates"][0]["private_key"] == {"file": "certs/key.pem", "value": "KEY"}
    with pytest.raises(InvalidInput) as exc:
        refs.resolve(doc, tmp_path, {})
    assert exc.value.field == "channels[ops].config.secret"
    assert "HOOK_SECRET is not set" in exc.value.message
    site = tmp_path / "site"
    site.mkdir()
    assert refs.bundle_source({"edge_deployment": {"bundle": "site"}}, tmp_path) == site
    assert refs.bundle_source({"edge_deployment": {"bundle": "a" * 64}}, tmp_path) is None


def test_differences_are_named_by_field_and_by_item_name() -> None:
    before = {
        "capacity": {"cpu": 4, "memory": 8},
        "backends": [{"key": "a:80", "weight": 100}, {"key": "b:80", "weight": 100}],
        "records": [{"type": "A", "ttl": 60}, {"type": "A", "ttl": 60}],
        "tags": ["x"],
    }
    after = {
        "capacity": {"cpu": 8, "memory": 8},
        "backends": [{"key": "a:80", "weight": 50}, {"key": "c:80", "weight": 100}],
        "records": [{"type": "A", "ttl": 60}, {"type": "A", "ttl": 120}],
        "tags": ["x", "y"],
    }
    got = {d.path: (d.before, d.after) for d in fields(before, after)}
    assert got == {
        "capacity.cpu": (4, 8),
        "backends[a:80].weight": (100, 50),
        "backends[b:80]": ({"key": "b:80", "weight": 100}, None),
        "backends[c:80]": (None, {"key": "c:80", "weight": 100}),
        "records[1].ttl": (60, 120),
        "tags": (["x"], ["x", "y"]),
    }
    assert fields(before, before) == []


def test_secret_fields_are_masked() -> None:
    diffs = fields({"config": {"secret": {"digest": "1"}}}, {"config": {"secret": {"digest": "2"}}})
    shown = masked(diffs, frozenset({"config.secret"}))
    assert [(d.path, d.before, d.after) for d in shown] == [
        ("config.secret", "(secret)", "(secret)")
    ]


def test_channel_secret_fields_are_exactly_the_references() -> None:
    from edgeplane.iac.kinds import channels as channel_kind

    assert channel_kind.references_match() == []
    assert channel_kind.Channels.secrets == {"config.secret", "config.password", "config.url"}
