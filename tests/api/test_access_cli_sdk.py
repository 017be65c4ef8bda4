"""The CLI and the SDK of tokens with scopes and expiry, rotation, service accounts and the
keyring agree with the API (embedded on the test's database; the CLI's ``--json`` is the
API's document)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta

import pytest

from conftest import Api, Cli
from edgeplane.errors import InvalidInput
from edgeplane.sdk.access_service import AccessService
from edgeplane.sdk.client import Client
from edgeplane.settings import Settings
from edgeplane.store.tables import utcnow

SQLITE = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def sdk(api: Api) -> Iterator[AccessService]:
    from edgeplane.sdk import embedded

    yield AccessService(client=Client(Settings(home=api.tmp / "home", database_url=api.db.url)))
    app = embedded._apps.pop(api.db.url, None)
    if app is not None:
        app.state.db.dispose()


@SQLITE
def test_the_cli_issues_rotates_and_lists_tokens_with_scopes(api: Api, cli: Cli) -> None:
    doc = cli.json(
        "token", "create", "--name", "dns", "--role", "default=editor",
        "--scope", "dns_records:write", "--scope", "domains:read", "--expires", "30d",
    )  # fmt: skip
    assert doc["scopes"] == ["dns_records:write", "domains:read"]
    left = doc["expires_at"]
    assert left is not None and doc["token"].startswith("ep_")
    table = cli.run("token", "list").stdout
    assert "SCOPES" in table and "EXPIRES" in table and "dns_records:write" in table
    rotated = cli.json("token", "rotate", doc["id"], "--grace", "10m")
    assert rotated["id"] == doc["id"] and rotated["token"] != doc["token"]
    assert rotated["previous_valid_until"] is not None
    err = cli.fails(
        "token", "create", "--name", "x", "--role", "default=viewer",
        "--scope", "dns_records:write", code=1,
    )  # fmt: skip
    assert "scopes.0" in err and "never grants more than the role" in err
    assert "--expires" in cli.run(
        "token", "create", "--name", "x", "--role", "default=viewer", "--expires", "soon",
        code=2,
    ).stderr  # fmt: skip
    # service accounts
    account = cli.json(
        "service-account", "create", "ci", "--role", "default=editor", "--scope", "cdn:purge"
    )
    assert account["scopes"] == ["cdn:purge"]
    issued = cli.json("service-account", "token", "ci", "--name", "build", "--expires", "1h")
    assert issued["service_account"] == "ci"
    assert cli.json("service-account", "disable", "ci")["disabled_at"] is not None
    # the keyring: the home's file; a rotation in one command (embedded: re-encrypted at once)
    before = api.get("/api/v1/secrets/status").json()  # the same key, from the environment
    after = cli.json("secrets", "rotate-key")
    assert after["primary"] != before["primary"]
    assert [k["id"] for k in after["keys"]] == [after["primary"]]
    table = cli.run("secrets", "status").stdout
    assert "keyring: file" in table and f"primary key {after['primary']}" in table


@SQLITE
def test_the_sdk_manages_tokens_and_accounts(api: Api, sdk: AccessService) -> None:
    async def scenario() -> None:
        try:
            issued = await sdk.create_token(
                "lb", {"default": "editor"}, scopes=["load_balancers:*"], expires=3600
            )
            assert issued.scopes == ["load_balancers:*"] and issued.expires_at is not None
            with pytest.raises(InvalidInput) as bad:
                await sdk.create_token(
                    "past", {"default": "editor"}, expires=utcnow() - timedelta(hours=1)
                )
            assert bad.value.field == "expires_at"
            rotated = await sdk.rotate_token(issued.id, grace_s=30)
            assert rotated.id == issued.id and rotated.token != issued.token
            listed = {t.id: t for t in await sdk.list_tokens()}
            assert listed[issued.id].scopes == ["load_balancers:*"]
            account = await sdk.create_service_account(
                "bot", {"default": "viewer"}, scopes=["*:read"]
            )
            assert account.roles == {"default": "viewer"}
            tok = await sdk.create_service_account_token("bot", "t", expires=timedelta(days=1))
            assert tok.service_account == "bot" and tok.scopes is None
            with pytest.raises(InvalidInput):
                await sdk.create_service_account_token("bot", "w", scopes=["cdn:write"])
            assert (await sdk.disable_service_account("bot")).disabled_at is not None
            assert [a.id for a in await sdk.list_service_accounts()] == ["bot"]
            status = await sdk.secret_status()
            assert status.unreadable == 0 and len(status.keys) == 1
        finally:
            await sdk.aclose()

    asyncio.run(scenario())
