"""Schema-driven fuzzing of the whole REST API with schemathesis, against a real control plane
(``edgeplane up --no-edge`` in its own process) on SQLite and on PostgreSQL.

Every operation of ``/openapi.json`` gets ``EXAMPLES`` generated cases per phase (examples,
coverage, fuzzing, stateful), with a fixed seed, and every check schemathesis has
(``--checks all``): no 5xx, status codes, content types, headers and bodies as documented
(error answers included), schema-valid data accepted, invalid data refused, 405 with
``Allow``, authentication enforced. The instance's DNS resolvers, ACME directory, SMTP server
and verification ports point at a closed loopback port, so nothing leaves the machine.

What the schema cannot say is listed in ``CONFIG`` below, operation by operation: a
schema-valid request may still be refused with 422 where validity depends on the stored state
(a reference to an object that must exist, a location of the region vocabulary, a field that
may only repeat its current value, a domain's verification) or on rules across fields or
inside text that JSON Schema does not express (per-type DNS values and service settings,
cache patterns, URLs, IDNA names and the public suffix list, archive contents).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from processes import clean_env, free_port, start_up

EXAMPLES = 10
SEED = 20261202

# Operations where 422 answers schema-valid data, and why (see the module docstring).
STATE_OR_CROSS_FIELD = {
    "POST /api/v1/tokens": "roles name projects that must exist",
    "POST /api/v1/infrastructure/datacenters": "location of the region vocabulary",
    "PATCH /api/v1/infrastructure/datacenters/{dc_id}": "ids and location repeat current values",
    "POST /api/v1/infrastructure/servers": "location vocabulary, data center must exist",
    "PATCH /api/v1/infrastructure/servers/{server_id}": "same, id repeats its value",
    "POST /api/v1/infrastructure/servers/{server_id}/metrics": "no sample from the future",
    "POST /api/v1/infrastructure/services": "server must exist, settings per type",
    "PATCH /api/v1/infrastructure/services/{service_id}": "settings per type, fixed fields",
    "PATCH /api/v1/infrastructure/regions/{code}": "code repeats its value",
    "POST /api/v1/infrastructure/loadbalancer": "servers must exist, status ranges",
    "PATCH /api/v1/infrastructure/loadbalancer/{lb_id}": "servers must exist, status ranges",
    "POST /api/v1/infrastructure/loadbalancer/{lb_id}/backends": "server ids, addresses",
    "PATCH /api/v1/infrastructure/loadbalancer/{lb_id}/backends/{address}": "address forms",
    "POST /api/v1/infrastructure/loadbalancer/{lb_id}/backends/{address}/drain": "address",
    "PUT /api/v1/infrastructure/loadbalancer/{lb_id}/health-check": "timeout below interval",
    "POST /api/v1/infrastructure/dr-configs": "data centers must exist",
    "PATCH /api/v1/infrastructure/dr-configs/{dr_id}": "data centers must exist",
    "GET /api/v1/infrastructure/route": "an IP address, a known service type",
    "POST /api/v1/infrastructure/cdn": "cache patterns, URLs, load balancers must exist",
    "POST /api/v1/infrastructure/cdn/rules": "cache patterns",
    "PATCH /api/v1/infrastructure/cdn/rules/{rule_id}": "cache patterns, id repeats",
    "POST /api/v1/infrastructure/cdn/purge": "path forms",
    "GET /api/v1/infrastructure/cdn/analytics": "time ranges",
    "POST /api/v1/infrastructure/domains": "IDNA names, public suffixes",
    "PUT /api/v1/infrastructure/domains/{domain}/records": "per-type values",
    "PATCH /api/v1/infrastructure/domains/{domain}/records": "per-type values",
    "POST /api/v1/infrastructure/domains/{domain}/verify": "codes",
    "POST /api/v1/infrastructure/ssl/{domain}": "verified domain, custom needs PEM",
    "POST /api/v1/infrastructure/ssl/{domain}/upload": "PEM contents",
    "POST /api/v1/infrastructure/ssl/{domain}/revoke": "certificate ids",
    "POST /api/v1/infrastructure/edge/bundles": "archive contents",
    "POST /api/v1/infrastructure/edge/deploy": "bundle and regions must exist",
    "PATCH /api/v1/infrastructure/edge/deployments/{deployment_id}": "regions must exist",
    "GET /api/v1/audit": "cursor is an event id",
}


def config() -> str:
    lines = []
    for name in sorted(STATE_OR_CROSS_FIELD):
        lines += [
            "[[operations]]",
            f'include-name = "{name}"',
            "checks.positive_data_acceptance.expected-statuses = "
            '["2xx", "3xx", "401", "403", "404", "409", "422", "429"]',
            "",
        ]
    return "\n".join(lines)


@pytest.mark.integration
@pytest.mark.timeout(900)
@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_fuzz_api(database: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    closed = free_port()  # nothing listens there: every outside call is refused at once
    env = clean_env(
        EDGEPLANE_DNS_RESOLVERS=f"127.0.0.1:{closed}",
        EDGEPLANE_VERIFY_NS_PORT=str(closed),
        EDGEPLANE_VERIFY_HTTP_PORT=str(closed),
        EDGEPLANE_SMTP_HOST="127.0.0.1",
        EDGEPLANE_SMTP_PORT=str(closed),
        EDGEPLANE_ACME_DIRECTORY=f"http://127.0.0.1:{closed}/directory",
    )
    if database == "postgresql":
        cluster = request.getfixturevalue("pg_cluster")
        env["EDGEPLANE_DATABASE_URL"] = cluster.create_database(f"fuzz{os.getpid()}")
    cp = start_up(tmp_path / "home", env=env)
    try:
        token = cp.token
        whoami = httpx.get(
            f"{cp.url}/api/v1/whoami", headers={"Authorization": f"Bearer {token}"}
        ).json()
        cfg = tmp_path / "schemathesis.toml"
        cfg.write_text(config())
        st = Path(sys.executable).with_name("st")
        started = time.monotonic()
        run = subprocess.run(
            [
                str(st),
                "--config-file",
                str(cfg),
                "--no-color",
                "run",
                f"{cp.url}/openapi.json",
                "--header",
                f"Authorization: Bearer {token}",
                "--checks",
                "all",
                "--max-examples",
                str(EXAMPLES),
                "--seed",
                str(SEED),
                # One worker: hypothesis parses lambdas' source with ast, which is not
                # thread-safe on CPython 3.11 (SystemError: AST constructor recursion depth).
                "--workers",
                "1",
                "--request-timeout",
                "30",
            ],
            env={
                **os.environ,
                "SCHEMATHESIS_HOOKS": "fuzz_hooks",
                "PYTHONPATH": str(Path(__file__).parent),
                "EDGEPLANE_FUZZ_TOKEN_ID": str(whoami["token_id"]),
            },
            capture_output=True,
            text=True,
            cwd=tmp_path,
        )
        elapsed = time.monotonic() - started
        tail = run.stdout[-20000:]
        print(f"schemathesis on {database}: {elapsed:.0f} s\n{tail}")
        assert run.returncode == 0, tail + run.stderr[-5000:]
        log = cp.output()
        assert "Traceback" not in log, log[-5000:]
    finally:
        assert cp.stop() == 0, cp.output()[-5000:]
