"""``edgeplane function ...`` and ``FunctionService``, embedded on the test database: deploys
from a file with routes, env, secrets (from the environment, a file, standard input) and
limits, following a rollout to its end (active, failed, timed out), reads, code, rollback,
activate, delete and check; flags refused naming the flag. The API on both databases is
tests/api/test_functions_api.py."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from api.test_functions_api import (
    CODE,
    FN,
    SECRET,
    FnNode,
    add_domain,
    code,
    fn_nodes,
    make_active,
    ok,
    version,
)
from conftest import Api, Cli, cli_app
from edgeplane.errors import Conflict, InvalidInput
from edgeplane.sdk.client import Client
from edgeplane.sdk.function_service import FunctionFailed, FunctionService, FunctionTimeout
from edgeplane.settings import Settings
from edgeplane.store.actor import LOCAL
from edgeplane.store.function_tables import FunctionVersionRow

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

BAD = "export default {\n  fetch() { return 1; }}\n};\n"


@pytest.fixture
def site(api: Api) -> dict[str, FnNode]:
    add_domain(api)
    return fn_nodes(api, ("eu-1", "eu-central"), ("us-1", "us-east"))


@pytest.fixture
def module(tmp_path: Path) -> Path:
    path = tmp_path / "hello.js"
    path.write_text(CODE)
    return path


def secrets_of(api: Api, n: int) -> dict[str, str]:
    import json

    with api.db.read(LOCAL, "default") as tx:
        row = tx.session.scalar(select(FunctionVersionRow).where(FunctionVersionRow.version == n))
        assert row is not None
        return (
            json.loads(tx.secrets.decrypt(row.secrets_encrypted)) if row.secrets_encrypted else {}
        )


def test_the_cli_deploys_from_its_flags(
    api: Api, cli: Cli, site: dict[str, FnNode], module: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("HELLO_TOKEN", SECRET)
    key = tmp_path / "key.txt"
    key.write_text("from-a-file\n")
    doc = cli.json(
        "function", "deploy", "hello", str(module), "--route", "*/api/*@get,POST",
        "--route", "shop.test/hi", "--env", "MODE=test", "--env", "N=1",
        "--secret", "TOKEN=env:HELLO_TOKEN", "--secret", "KEY=file:" + str(key),
        "--timeout-ms", "250", "--memory-mb", "64", "--check-path", "/hi", "-m", "first",
        "--no-wait",
    )  # fmt: skip
    assert doc["created"] is True
    v = doc["version"]
    assert v["routes"] == [
        {"pattern": "*/api/*", "methods": ["GET", "POST"]},
        {"pattern": "shop.test/hi", "methods": []},
    ]
    assert v["env"] == {"MODE": "test", "N": "1"} and v["secrets"] == ["KEY", "TOKEN"]
    assert v["limits"] == {"timeout_ms": 250, "memory_mb": 64}
    assert (v["check_path"], v["message"], v["status"]) == ("/hi", "first", "canary")
    assert secrets_of(api, 1) == {"KEY": "from-a-file", "TOKEN": SECRET}

    # A secret from standard input; another removed; the rest inherited.
    result = cli.runner.invoke(
        cli_app,
        ["function", "deploy", "hello", str(module), "--secret", "PIN",
         "--remove-secret", "KEY", "--no-wait", "--json"],
        input="1234\n",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert SECRET not in result.stdout and "1234" not in result.stdout
    assert secrets_of(api, 2) == {"PIN": "1234", "TOKEN": SECRET}
    # The same content again: nothing made, said so.
    out = cli.run("function", "deploy", "hello", str(module), "--no-wait").stdout
    assert out.startswith("unchanged: function hello version 2 canary")

    listed = cli.run("function", "list").stdout
    assert "hello" in listed and "*/api/*@GET,POST" in listed
    shown = cli.run("function", "show", "hello").stdout
    assert "TOKEN" in shown and "PIN" in shown and SECRET not in shown and "1234" not in shown
    assert "MODE=test" in shown and "eu-central" in shown
    versions = cli.run("functions", "versions", "hello").stdout  # the alias
    assert "cancelled" in versions and "canary" in versions
    assert cli.run("function", "code", "hello").stdout == CODE
    assert cli.run("function", "code", "hello", "1").stdout == CODE
    assert cli.json("function", "versions", "hello")["items"][0]["version"] == 2
    # --clear-env: the next version has no env variable; the rest inherited.
    v3 = cli.json("function", "deploy", "hello", str(module), "--clear-env", "--no-wait")["version"]
    assert (v3["version"], v3["env"], v3["secrets"]) == (3, {}, ["PIN", "TOKEN"])
    assert v3["check_path"] == "/hi" and v3["limits"]["timeout_ms"] == 250


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--route", "api/*"], "--route: 'api/*' must be HOST/PATH, e.g. shop.example.com/api/*"),
        (["--route", "*/a*b"], "'*' is allowed only as the last character"),
        (["--env", "NOVALUE"], "'NOVALUE' is not KEY=VALUE"),
        (["--secret", "K=plain"], "a value on the command line would show in ps"),
        (["--secret", "K=env:NOT_SET_ANYWHERE"], "'NOT_SET_ANYWHERE' is not set"),
        (["--secret", "K=file:/nonexistent/x"], "cannot read /nonexistent/x"),
        (["--timeout", "0"], "--timeout: must be a positive number"),
        (["--env", "A=1", "--clear-env"], "--clear-env: not with --env"),
    ],
)
def test_bad_flags_are_refused_naming_them(
    cli: Cli, module: Path, flags: list[str], message: str
) -> None:
    err = cli.fails("function", "deploy", "hello", str(module), *flags, code=2)
    assert message in " ".join(err.split()), err


def test_the_api_refusals_come_through(cli: Cli, site: dict[str, FnNode], tmp_path: Path) -> None:
    bad = tmp_path / "bad.js"
    bad.write_text(BAD)
    err = cli.fails("function", "deploy", "hello", str(bad), "--route", "*/a", code=1)
    assert "code: line 3, column" in err and "SyntaxError" in err
    err = cli.fails("function", "deploy", "hello", str(tmp_path / "missing.js"), code=2)
    assert "FILE: cannot read" in err
    good = tmp_path / "good.js"
    good.write_text(CODE)
    err = cli.fails("function", "deploy", "hello", str(good), "--route", "x.test/a", code=1)
    assert "x.test is not a domain of project 'default'" in err
    err = cli.fails("function", "check", str(bad), code=1)
    assert f"{bad}:3:" in err and "SyntaxError" in err
    assert cli.run("function", "check", str(good)).stdout.strip() == f"{good}: ok"
    assert cli.json("function", "check", str(good))["ok"] is True
    assert "not found" in cli.fails("function", "show", "nope", code=1)


def test_following_a_rollout(api: Api, cli: Cli, site: dict[str, FnNode], module: Path) -> None:
    # Nodes that load and check the version while the CLI follows it.
    def nodes_report() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            r = api.get(f"{FN}/hello")
            if r.status_code == 200 and r.json().get("current"):
                make_active(site, r.json()["current"])
                return
            time.sleep(0.05)

    helper = threading.Thread(target=nodes_report)
    helper.start()
    try:
        result = cli.run("function", "deploy", "hello", str(module), "--route", "*/a")
    finally:
        helper.join()
    assert "function hello version 1 active on 2 nodes" in result.stdout
    assert "version 1: canary" in result.stderr

    # Still in its canary at --timeout: exit 1, it goes on.
    err = cli.run("function", "deploy", "hello", str(module), "--secret", "X=env:PATH",
                  "--timeout", "0.3", code=1).stderr  # fmt: skip
    assert "version 2 is still canary after 0.3s; it goes on" in err
    v2 = version(api, "hello", 2)
    site["eu-1"].report(v2, "failed", "boom at the check")
    err = cli.fails("function", "rollback", "hello", code=1)
    assert "no earlier version that was active" in err
    v3 = ok(api.call("PUT", f"{FN}/hello", json={"code": code("v3")}), 202)["version"]
    make_active(site, v3)
    out = cli.run("function", "rollback", "hello").stdout
    assert "function hello version 4 rolling" in out
    err = cli.run("function", "activate", "hello", "1", "--wait", "--timeout", "0.3", code=1).stderr
    assert "version 5 is still rolling after 0.3s" in err
    assert version(api, "hello", 4)["status"] == "cancelled"
    assert "deleted function hello" in cli.run("function", "delete", "hello").stdout
    assert cli.json("function", "list")["items"] == []


def test_a_failed_version_exits_1(
    api: Api, cli: Cli, site: dict[str, FnNode], module: Path
) -> None:
    def canary_fails() -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            r = api.get(f"{FN}/hello")
            if r.status_code == 200 and r.json().get("current"):
                site["eu-1"].report(r.json()["current"], "failed", "ReferenceError: x")
                return
            time.sleep(0.05)

    helper = threading.Thread(target=canary_fails)
    helper.start()
    try:
        result = cli.run("function", "deploy", "hello", str(module), "--route", "*/a", code=1)
    finally:
        helper.join()
    assert "function hello version 1 failed: canary eu-1: ReferenceError: x" in result.stderr
    assert result.stdout.startswith("function hello version 1 failed")


@pytest.fixture
def functions(api: Api) -> Iterator[FunctionService]:
    from edgeplane.sdk import embedded

    client = Client(Settings(home=api.tmp / "home", database_url=api.db.url))
    yield FunctionService(client=client)
    app = embedded._apps.pop(api.db.url, None)
    if app is not None:
        app.state.db.dispose()


def test_the_sdk(api: Api, functions: FunctionService, site: dict[str, FnNode]) -> None:
    import edgeplane

    assert edgeplane.FunctionService is FunctionService and "FunctionService" in edgeplane.__all__

    async def scenario() -> None:
        try:
            seen: list[Any] = []
            first = await functions.deploy(
                "hello", CODE, routes=["*/api/*", {"pattern": "shop.test/x", "methods": ["GET"]}],
                env={"A": "1"}, secrets={"K": SECRET}, limits={"timeout_ms": 10},
                check_path="/x", message="one",
            )  # fmt: skip
            v1 = first.version
            assert first.created and v1.status == "canary" and v1.secrets == ["K"]
            assert v1.limits.timeout_ms == 10 and v1.limits.memory_mb == 128
            assert v1.routes[1].methods == ["GET"]
            with pytest.raises(FunctionTimeout, match=r"version 1 is still canary after 0\.2s"):
                await functions.wait_for("hello", 1, timeout=0.2)
            await asyncio.to_thread(make_active, site, v1.model_dump(mode="json"))
            done = await functions.wait_for("hello", 1, on_progress=seen.append)
            assert done.status == "active" and seen[-1].status == "active"
            same = await functions.deploy("hello", CODE)
            assert same.created is False and same.version.id == v1.id
            v2 = (await functions.deploy("hello", code("v2"), secrets={"K": None})).version
            assert v2.secrets == [] and v2.env == {"A": "1"}
            await asyncio.to_thread(site["eu-1"].report, v2.model_dump(mode="json"), "failed")
            with pytest.raises(FunctionFailed, match="version 2 failed: canary eu-1"):
                await functions.wait_for("hello", 2)
            fn = await functions.get("hello")
            assert fn.active_version == 1 and fn.current is not None and fn.current.version == 1
            assert [f.name for f in (await functions.list_functions()).items] == ["hello"]
            page = await functions.versions("hello", limit=1)
            assert [v.version for v in page.items] == [2] and page.next_cursor == "2"
            more = await functions.versions("hello", cursor=page.next_cursor)
            assert [v.version for v in more.items] == [1]
            assert (await functions.version("hello", 1)).code == CODE
            with pytest.raises(Conflict, match="no earlier version"):
                await functions.rollback("hello")
            with pytest.raises(Conflict, match="never active"):
                await functions.activate("hello", 2)
            with pytest.raises(InvalidInput, match="code: line 3"):
                await functions.deploy("hello", BAD)
            check = await functions.check(BAD)
            assert not check.ok and check.line == 3 and "SyntaxError" in check.message
            assert (await functions.check(CODE)).ok
            await functions.delete("hello")
            assert (await functions.list_functions()).items == []
        finally:
            await functions.client.aclose()

    asyncio.run(scenario())
