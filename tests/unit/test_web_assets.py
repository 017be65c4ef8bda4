"""The dashboard's files as shipped: what web/vendor.mjs takes from npm is up to date in the
package, every module a page imports is there, every route has its page, and every file is
package data (the wheel carries the dashboard; running it needs no Node)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "src" / "edgeplane" / "web"
IMPORT = re.compile(r"""(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)["'`](\.{1,2}/[^"'`$]+)["'`]""")


def _need_node_modules() -> None:
    if (ROOT / "web" / "node_modules" / "preact").exists() and shutil.which("node"):
        return
    if os.environ.get("CI") == "true":
        pytest.fail("web/node_modules is missing: scripts/bootstrap --with-test installs it")
    pytest.skip("web/node_modules is missing (scripts/bootstrap --with-test)")


def test_vendored_files_are_what_vendor_mjs_writes() -> None:
    _need_node_modules()
    run = subprocess.run(
        ["node", str(ROOT / "web" / "vendor.mjs"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr + run.stdout


def test_every_relative_import_resolves() -> None:
    missing = []
    for js in sorted(WEB.rglob("*.js")):
        for target in IMPORT.findall(js.read_text()):
            if not (js.parent / target).resolve().is_file():
                missing.append(f"{js.relative_to(WEB)} imports {target}")
    assert missing == []


def test_every_route_has_its_page() -> None:
    routes = (WEB / "js" / "routes.js").read_text()
    modules = re.findall(r'module:\s*"([a-z_]+)"', routes)
    assert len(modules) >= 10
    for module in modules:
        page = WEB / "js" / "pages" / f"{module}.js"
        assert page.is_file(), page
        assert "export default function" in page.read_text(), page


def _package_data_patterns() -> list[str]:
    doc: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return list(doc["tool"]["setuptools"]["package-data"]["edgeplane"])


def test_every_dashboard_file_is_package_data() -> None:
    package = ROOT / "src" / "edgeplane"
    covered = set()
    for pattern in _package_data_patterns():
        covered |= {p for p in package.glob(pattern) if p.is_file()}
    files = {p for p in WEB.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    assert files - covered == set()
    assert (WEB / "index.html") in files and (WEB / "world.json") in files
