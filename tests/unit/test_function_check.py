"""The control plane's check of a function module (``check_code``, running ``check.mjs``), and
how a node finds out whether it can run edge functions at all (``find``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeplane.node.functions.find import RuntimeMissing, find_runtime, locate_runtime
from edgeplane.node.functions.process import CheckResult, check_code
from function_runtime_support import RUNTIME, needs_runtime


@needs_runtime
@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (
            'export default {\n  fetch() { return new Response("ok"); }\n};\n',
            CheckResult(ok=True),
        ),
        (
            "export default {\n  fetch() { return 1 +; }\n}\n",
            CheckResult(False, 2, 23, "SyntaxError: Unexpected token ';'"),
        ),
        (
            "export default {\n  fetch() {}\n}\n}\n",
            CheckResult(False, 4, 1, "SyntaxError: Unexpected token '}'"),
        ),
        (
            "export default { handler() {} };",
            CheckResult(
                False, None, None, "the module must export default { fetch(request, env, ctx) }"
            ),
        ),
        (
            "export const fetch = () => 1;",
            CheckResult(
                False, None, None, "the module must export default { fetch(request, env, ctx) }"
            ),
        ),
        (
            "const a = 1;\nconst b = nope.c;\nexport default { fetch() {} };",
            CheckResult(False, 2, 11, "ReferenceError: nope is not defined"),
        ),
        (
            "\nimport { x } from './other.js';\nexport default { fetch() {} };",
            CheckResult(False, 2, 19, 'imports are not supported (import "./other.js")'),
        ),
        (
            "for (;;) {}\nexport default { fetch() {} };",
            CheckResult(False, None, None, "the module's top level did not finish within 1000 ms"),
        ),
        (
            "const u = new URL('https://a.example/?q=1');\nconsole.log(u.searchParams.get('q'));\n"
            "export default { fetch() { return new Response(u.href); } };",
            CheckResult(ok=True),
        ),
    ],
)
def test_check_code_says_where_a_module_is_wrong(code: str, expected: CheckResult) -> None:
    assert check_code(code, runtime=RUNTIME) == expected


def test_no_node_means_no_runtime(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGEPLANE_NODE", "/nonexistent/node")
    assert find_runtime() is None
    with pytest.raises(RuntimeMissing, match=r"no Node\.js binary"):
        locate_runtime()


@needs_runtime
def test_a_runtime_without_its_npm_packages_is_missing(tmp_path: Path) -> None:
    with pytest.raises(RuntimeMissing, match="isolated-vm is not installed"):
        locate_runtime(tmp_path)
    assert find_runtime(tmp_path) is None


def test_every_runtime_file_is_package_data() -> None:
    """A wheel carries the runtime's own files (its node_modules are installed beside it)."""
    import tomllib

    root = Path(__file__).resolve().parents[2]
    package = root / "src" / "edgeplane"
    runtime = package / "node" / "functions" / "runtime"
    doc = tomllib.loads((root / "pyproject.toml").read_text())
    covered = set()
    for pattern in doc["tool"]["setuptools"]["package-data"]["edgeplane"]:
        covered |= {p for p in package.glob(pattern) if p.is_file()}
    files = {
        p
        for p in runtime.rglob("*")
        if p.is_file() and "node_modules" not in p.relative_to(runtime).parts
    }
    assert files and files - covered == set()
