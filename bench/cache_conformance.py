"""RFC 9111 conformance of the edge's cache: the public suite behind cache-tests.fyi, run
against a real edge node, counted as its results page counts it.

Run from the repository root (as root, for the ``/etc/hosts`` line; about a minute here)::

    .venv/bin/python bench/cache_conformance.py --suite DIR [--out results.json] [--markdown]
    .venv/bin/python bench/cache_conformance.py --suite DIR --count results.json  # no run

``DIR`` is a clone of github.com/http-tests/cache-tests with ``npm i`` done in it (outside this
repository; also ``$EDGEPLANE_CACHE_TESTS``). Without node, npm or the clone the script says
what is missing and exits 0: it is not part of the test suite.

What runs: the suite's origin server (``test-engine/server/server.mjs``, loaded by a small
wrapper that binds it to 127.0.0.1 on a free port), one edge node (``NginxEngine`` on free
loopback ports, from a snapshot like the control plane makes) whose site ``--name`` has that
origin as its pool and one cache rule ``/*`` that honours the origin (``ttl: 0``: nothing is
stored that the origin does not make fresh), and the suite's command line client
(``npm run --silent cli --base=http://NAME:PORT``). ``NAME`` resolves through a line added to
``/etc/hosts`` and removed afterwards (or pass ``--name 127.0.0.1`` to need none).

Counting: each test's result through the suite's own ``determineTestResult`` (dependencies
honoured, as on cache-tests.fyi) and its kind (``required`` when absent, ``optimal``,
``check``); the same for every engine's published run in the clone's ``results/*.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "integration"))

from common import BenchRun, add_hosts_line, log, remove_hosts_line, signals_raise  # noqa: E402
from processes import free_port  # noqa: E402

from edgeplane.node.nginx.engine import NginxEngine  # noqa: E402
from edgeplane.node.nginx.local import LocalHealth, NodeLocal, find_js_module  # noqa: E402
from edgeplane.protocol.config import (  # noqa: E402
    BackendSpec,
    CacheRuleSpec,
    EdgeConfig,
    NodeSpec,
    PoolSpec,
    SiteSpec,
)

# Binds the suite's origin to 127.0.0.1 (it listens on every interface by itself).
WRAPPER = """import http from 'http'
const listen = http.Server.prototype.listen
http.Server.prototype.listen = function (port, ...rest) {
  return listen.call(this, port, '127.0.0.1', ...rest)
}
await import(process.argv[2])
"""

# Classifies a results file (argv[3]) with the suite's own code (argv[2]: the clone).
COUNTER = """const [suite, file] = process.argv.slice(2)
const tests = (await import(suite + '/tests/index.mjs')).default
const { determineTestResult, resultTypes } = await import(suite + '/test-engine/lib/results.mjs')
const fs = await import('fs')
const results = JSON.parse(fs.readFileSync(file))
const names = Object.fromEntries(Object.entries(resultTypes).map(([k, v]) => [v[2], k]))
const out = { counts: {}, tests: {} }
for (const s of tests) {
  for (const t of s.tests) {
    if (t.browser_only) continue
    const kind = t.kind || 'required'
    const result = names[determineTestResult(tests, t.id, results, true)[2]]
    out.tests[t.id] = [kind, result]
    const key = kind + ':' + result
    out.counts[key] = (out.counts[key] || 0) + 1
  }
}
console.log(JSON.stringify(out))
"""


def missing(suite: Path | None) -> str | None:
    """Why the suite cannot run here (None: it can)."""
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if suite is None:
        return "no clone of http-tests/cache-tests given (--suite or $EDGEPLANE_CACHE_TESTS)"
    if not (suite / "tests" / "index.mjs").is_file():
        return f"{suite} is not a clone of http-tests/cache-tests"
    if not (suite / "node_modules").is_dir():
        return f"{suite} has no node_modules (run npm i there)"
    return None


def classify(suite: Path, results: Path, work: Path) -> dict[str, object]:
    script = work / "count.mjs"
    script.write_text(COUNTER)
    done = subprocess.run(
        ["node", str(script), str(suite.resolve()), str(results.resolve())],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    parsed: dict[str, object] = json.loads(done.stdout)
    return parsed


def _counts(classified: dict[str, object]) -> dict[str, int]:
    counts = classified["counts"]
    assert isinstance(counts, dict)
    return {str(k): int(v) for k, v in counts.items()}


def summary(counts: dict[str, int]) -> dict[str, int]:
    def of(kind: str, *results: str) -> int:
        return sum(counts.get(f"{kind}:{r}", 0) for r in results)

    return {
        "required passed": of("required", "pass"),
        "required failed": of("required", "fail"),
        "required not run (dependency, setup, harness)": of(
            "required", "dependency_fail", "setup_fail", "harness_fail", "retry", "untested"
        ),
        "optimal passed": of("optimal", "pass"),
        "optimal failed": of("optimal", "optional_fail"),
        "check yes": of("check", "yes"),
        "check no": of("check", "no"),
    }


def start_origin(suite: Path, work: Path, run: BenchRun) -> int:
    wrapper = work / "origin.mjs"
    wrapper.write_text(WRAPPER)
    port = free_port()
    env = {
        **os.environ,
        "npm_config_protocol": "http",
        "npm_config_port": str(port),
        "npm_config_pidfile": str(work / "origin.pid"),
    }
    server = (suite / "test-engine" / "server" / "server.mjs").resolve()
    log_file = (work / "origin.log").open("wb")
    proc = subprocess.Popen(
        ["node", str(wrapper), server.as_uri()],
        cwd=suite,
        env=env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )

    def stop() -> None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log_file.close()

    run.cleanup.add(stop)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if b"Listening on" in (work / "origin.log").read_bytes():
            return port
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise RuntimeError(f"the suite's origin did not start: {(work / 'origin.log').read_text()}")


def start_edge(name: str, origin_port: int, run: BenchRun) -> int:
    local = NodeLocal(
        prefix=run.tmp / "nginx",
        node_name="edge-conformance",
        http_port=free_port(),
        js_module=find_js_module(),
    )
    engine = NginxEngine(local)
    run.cleanup.add(engine.stop)
    pool = PoolSpec(
        id="origin.conformance",
        algorithm="round_robin",
        backends=(BackendSpec(key="suite", host="127.0.0.1", port=origin_port),),
    )
    # What the API makes of a rule {"pattern": "/*", "ttl": 0, "origin_cache_control":
    # "honour"} with the other fields at their defaults.
    rule = CacheRuleSpec(id="all", pattern="/*", ttl=0, origin_cache_control="honour")
    site = SiteSpec(id="conformance", domains=(name,), pool=pool.id, cache_rules=(rule,))
    config = EdgeConfig(
        revision=1,
        node=NodeSpec(id="n1", name="edge-conformance", region="local"),
        sites=(site,),
        pools=(pool,),
    )
    result = engine.apply(config, LocalHealth())
    if not result.ok:
        raise RuntimeError(f"the edge did not apply: {result.error}")
    return local.http_port


def run_suite(suite: Path, base: str, out: Path, test_id: str | None) -> None:
    cmd = ["npm", "run", "--silent", "cli", f"--base={base}"]
    if test_id:
        cmd.append(f"--id={test_id}")
    log(f"running {' '.join(cmd)} in {suite} (about a minute)")
    started = time.monotonic()
    with out.open("wb") as f:
        done = subprocess.run(cmd, cwd=suite, stdout=f, stderr=subprocess.PIPE, timeout=1800)
    log(f"the suite ran in {time.monotonic() - started:.0f} s (exit {done.returncode})")
    if done.returncode != 0:
        raise RuntimeError(f"the suite failed: {done.stderr.decode(errors='replace')[-2000:]}")


def report(suite: Path, ours: Path | None, work: Path, markdown: bool) -> str:
    rows: list[tuple[str, dict[str, int]]] = []
    if ours is not None:
        rows.append(("edgeplane (this run)", summary(_counts(classify(suite, ours, work)))))
    for published in sorted((suite / "results").glob("*.json")):
        rows.append((published.stem, summary(_counts(classify(suite, published, work)))))
    head = ["engine", *rows[0][1]]
    body = [[name, *(str(v) for v in figures.values())] for name, figures in rows]
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in body])
    widths = [max(len(r[i]) for r in [head, *body]) for i in range(len(head))]
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    return "\n".join(fmt.format(*r) for r in [head, *body])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", type=Path, default=os.environ.get("EDGEPLANE_CACHE_TESTS"))
    parser.add_argument("--name", default="cache-tests.edgeplane.test", help="the site's name")
    parser.add_argument("--out", type=Path, help="keep the suite's results JSON here")
    parser.add_argument("--count", type=Path, help="count this results file, run nothing")
    parser.add_argument("--id", help="run one test of the suite (its output goes to stderr)")
    parser.add_argument("--failed", action="store_true", help="list the required tests failed")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    suite: Path | None = Path(args.suite) if args.suite else None
    why = missing(suite)
    if why is not None:
        print(f"cache conformance: skipped ({why})")
        return 0
    assert suite is not None
    run = BenchRun("cache-conformance")
    try:
        with signals_raise():
            ours: Path | None = args.count
            if ours is None:
                hosts = os.geteuid() == 0 and add_hosts_line(args.name)
                if hosts:
                    run.cleanup.add(lambda: remove_hosts_line(args.name))
                origin = start_origin(suite, run.tmp, run)
                port = start_edge(args.name, origin, run)
                ours = args.out or run.tmp / "results.json"
                run_suite(suite, f"http://{args.name}:{port}", ours, args.id)
                if args.id:
                    sys.stderr.write(ours.read_text())
                    return 0
            print(report(suite, ours, run.tmp, args.markdown))
            if args.failed:
                tests = classify(suite, ours, run.tmp)["tests"]
                assert isinstance(tests, dict)
                failed = [t for t, (kind, r) in tests.items() if kind == "required" and r != "pass"]
                print("required, not passed: " + " ".join(sorted(failed)))
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        run.close()
    return run.status()


if __name__ == "__main__":
    sys.exit(main())
