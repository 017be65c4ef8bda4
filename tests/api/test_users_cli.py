"""``edgeplane user``: logins of the dashboard created, listed and deleted from the CLI, the
password read from a file (never printed) or generated and printed once, bad input refused
with the field named."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import Api, Cli

# The CLI / SDK / contract over the API: the API itself runs on both databases elsewhere.
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def test_create_list_and_delete_a_login(api: Api, cli: Cli, tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("correct horse battery\n")
    out = cli.run("user", "create", "alice", "--role", "default=viewer",
                  "--password-file", str(secret)).stdout  # fmt: skip
    assert "alice" in out and "correct horse battery" not in out
    r = api.client.post(
        "/api/v1/session", json={"login": "alice", "password": "correct horse battery"}
    )
    assert r.status_code == 201 and r.json()["roles"] == {"default": "viewer"}
    # No password given and no terminal: one is generated and printed once.
    out = cli.run("user", "create", "bob", "--role", "default=editor").stdout
    generated = out.split("password (shown once, store it now):")[1].strip()
    r = api.client.post("/api/v1/session", json={"login": "bob", "password": generated})
    assert r.status_code == 201, r.text
    assert [u["name"] for u in cli.json("user", "list")] == ["alice", "bob"]
    cli.run("user", "delete", "alice")
    assert [u["name"] for u in cli.json("user", "list")] == ["bob"]


def test_bad_input_names_the_field(api: Api, cli: Cli, tmp_path: Path) -> None:
    short = tmp_path / "pw"
    short.write_text("short\n")
    err = cli.fails("user", "create", "carol", "--role", "default=viewer",
                    "--password-file", str(short), code=1)  # fmt: skip
    assert "password" in err and "at least 10 characters" in err and "short\n" not in err
    err = cli.fails("user", "create", "carol", "--password-file", str(tmp_path / "none"), code=2)
    assert "--password-file" in err
    assert cli.json("user", "list") == []
