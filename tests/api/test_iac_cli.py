"""The CLI of infrastructure as code, embedded on the test app's database: saved plans (applied
later, refused when the state or the file moved), exit codes for CI, stdin, the schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from conftest import Cli

# The sections' behaviour does not depend on the database: SQLite here; the engine's locks and
# transactions are tested on both (test_iac_core.py), and the end-to-end round trip applies
# every section on PostgreSQL (tests/integration/test_iac_end_to_end.py).
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


DC = {
    "id": "dc-1",
    "name": "Primary",
    "location": "us-east",
    "tier": 3,
    "capacity": {"cpu": 10, "memory": 20, "storage": 30},
}


def write(path: Path, **changes: object) -> Path:
    path.write_text(yaml.safe_dump({"version": 1, "data_centers": [{**DC, **changes}]}))
    return path


def test_a_saved_plan_applies_later_unless_the_state_or_the_file_moved(
    cli: Cli, tmp_path: Path
) -> None:
    file = write(tmp_path / "infra.yaml")
    saved = tmp_path / "infra.plan"
    cli.run("plan", "-f", str(file), "-o", str(saved), "--detailed-exitcode", code=2)
    assert json.loads(saved.read_text())["plan"]["summary"]["create"] == 1
    assert "secret" not in saved.read_text()
    done = cli.run("apply", "-f", str(saved), "--yes").stdout
    assert "+ data_centers[dc-1]" in done and "Applied as revision" in done
    assert "No changes" in cli.run("plan", "-f", str(file), "--detailed-exitcode").stdout

    write(file, tier=4)
    cli.run("plan", "-f", str(file), "-o", str(saved), code=0)
    cli.run("datacenter", "update", "dc-1", "--name", "renamed meanwhile")
    err = cli.fails("apply", "-f", str(saved), "--yes", code=1)
    assert "the state has changed since this plan was made" in err

    cli.run("plan", "-f", str(file), "-o", str(saved))
    write(file, tier=2)
    err = cli.fails("apply", "-f", str(saved), "--yes", code=1)
    assert "changed since the plan was saved" in err


def test_stdin_json_and_the_schema(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = json.dumps({"version": 1, "data_centers": [DC]})
    result = cli.runner.invoke(
        __import__("edgeplane.cli.main", fromlist=["app"]).app,
        ["plan", "-f", "-", "--json"],
        input=doc,
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["summary"]["create"] == 1
    out = tmp_path / "edgeplane.schema.json"
    cli.run("schema", "-o", str(out))
    schema = json.loads(out.read_text())
    assert schema["title"] == "Edgeplane file" and "data_centers" in schema["properties"]
    err = cli.fails("plan", "-f", str(tmp_path / "missing.yaml"), code=1)
    assert "cannot read" in err
    (tmp_path / "bad.yaml").write_text("data_centers: [\n")
    err = cli.fails("plan", "-f", str(tmp_path / "bad.yaml"), code=1)
    assert "is not valid YAML or JSON (line" in err
