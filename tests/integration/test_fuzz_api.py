"""Schema-driven fuzzing of the whole REST API with schemathesis, against a real control plane
(``edgeplane up --no-edge`` in its own process) on PostgreSQL.

Every operation of ``/openapi.json`` gets ``EXAMPLES`` generated cases per phase (examples,
coverage, fuzzing, stateful), with a fixed seed, and every check schemathesis has
(``--checks all``): no 5xx, status codes, content types, headers and bodies as documented
(error answers included), schema-valid data accepted, invalid data refused, 405 with
``Allow``, authentication enforced. The instance's DNS resolvers, ACME directory, SMTP server
and verification ports point at a closed loopback port, so nothing leaves the machine.

What the schema cannot say is listed in ``STATE_OR_CROSS_FIELD`` below, operation by
operation, each with its reason: there a schema-valid request may still be refused with 422,
because validity depends on the stored state (a reference to an object that must exist, a
vocabulary kept in the database, a field that may only repeat its current value), on the clock,
or on rules across fields or inside text and uploads that JSON Schema does not express
(per-type DNS values and service settings, IDNA names and the public suffix list, PEM data,
archive contents). Everything else (patterns, enumerations, bounds, required-one-of) is in
the schema, and 422 on schema-valid data elsewhere fails the test.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from processes import ControlPlane, clean_env, free_port, start_up

EXAMPLES = 4
SEED = 20261202

# Operations where 422 may answer schema-valid data, each with the rule the schema cannot state:
# one that depends on stored state (a reference that must exist, a vocabulary kept in the
# database, a field that may only repeat its current value), on the clock, or that relates
# several fields or the inside of a text or an upload.
INV = "/api/v1/infrastructure"
STATE_OR_CROSS_FIELD = {
    "POST /api/v1/tokens": "the projects named in roles must exist; each scope needs a role "
    "that allows its action; expires_at after now (the clock), not with ttl_s",
    "POST /api/v1/service-accounts": "the projects named in roles must exist; each scope "
    "needs a role that allows its action",
    "POST /api/v1/service-accounts/{account_id}/tokens": "scopes within the account's scopes "
    "and roles; expires_at after now (the clock), not with ttl_s",
    "POST /api/v1/logins": "the projects named in roles must exist",
    f"GET {INV}/regions": "?region= names a location or region of the stored vocabulary",
    f"POST {INV}/regions": "region_type (or its older name area) must be the region code's",
    f"GET {INV}/datacenters": "?region= names a location or region of the stored vocabulary",
    f"GET {INV}/servers": "?region= and ?location= name the stored vocabulary",
    f"POST {INV}/datacenters": "location must lie in region (the stored region vocabulary)",
    f"PATCH {INV}/datacenters/{{dc_id}}": "id, region and location may only repeat their values",
    f"POST {INV}/servers": "data_center_id must exist; location of the stored vocabulary",
    f"PATCH {INV}/servers/{{server_id}}": "the same, and id may only repeat its value",
    f"POST {INV}/servers/{{server_id}}/metrics": "a sample's time may not lie in the future",
    f"POST {INV}/services": "server_id must exist; settings are checked per service type",
    f"PATCH {INV}/services/{{service_id}}": "settings per the stored type; fixed fields repeat",
    f"PATCH {INV}/regions/{{code}}": "code may only repeat its current value",
    f"POST {INV}/loadbalancer": "server ids must exist; health_check.timeout_s < interval_s; "
    "tier names a tier of the stored cost model that holds the backends",
    f"PATCH {INV}/loadbalancer/{{lb_id}}": "the same rules on the merged load balancer",
    f"POST {INV}/loadbalancer/{{lb_id}}/backends": "a server id must exist; port only for one; "
    "the load balancer's tier must hold one more backend",
    f"PATCH {INV}/loadbalancer/{{lb_id}}/backends/{{address}}": "port only for a server id",
    f"PUT {INV}/loadbalancer/{{lb_id}}/health-check": "timeout_s must be below interval_s",
    f"POST {INV}/dr-configs": "both data centers must exist, and differ",
    f"PATCH {INV}/dr-configs/{{dr_id}}": "the same on the merged config; id repeats its value",
    f"POST {INV}/scaling-groups": "the load balancer and data center must exist; the template "
    "is the driver's (a {port} placeholder); min_size at most max_size, desired between; a "
    "cron expression and time zone; a service type of the inventory's",
    f"PATCH {INV}/scaling-groups/{{group_id}}": "the same on the merged group; id repeats",
    f"POST {INV}/cdn": "load balancers must exist; each origin has url or load_balancer",
    f"POST {INV}/cdn/rules": "position at most the number of rules",
    f"PATCH {INV}/cdn/rules/{{rule_id}}": "position at most the number of rules; id repeats",
    f"GET {INV}/cdn/analytics": "timeframe excludes start; start before end, at most 366 days",
    f"GET {INV}/cdn/bots": "timeframe excludes start; start before end, at most 366 days",
    f"POST {INV}/cdn/waf/exclusions": "a range of rule ids starts at or below its end "
    "(942100-942199), which the schema's pattern cannot order",
    f"PUT {INV}/cdn/bots/settings": "good bots' addresses are IP networks (an address or a CIDR "
    "block of either family), which the schema states as text",
    f"POST {INV}/domains": "IDNA rules and the public suffix list",
    f"PUT {INV}/domains/{{domain}}/records": "values per record type; names inside the zone",
    f"PATCH {INV}/domains/{{domain}}/records": "values per record type; names inside the zone",
    f"POST {INV}/domains/{{domain}}/verify": "the code must be the one that was sent",
    f"GET {INV}/domains/{{domain}}/logs": "client is an IP address or a network (CIDR)",
    "GET /api/v1/metrics": "the selectors and group_by a series takes depend on the series; "
    "start before end; at most 2,000 points",
    "POST /api/v1/alerts/rules": "the selector's keys depend on the series; channels must exist",
    "PATCH /api/v1/alerts/rules/{rule_id}": "the same rules on the merged rule",
    "POST /api/v1/alerts/channels": "webhook header names the sender sets (Host, Content-Type, "
    "the signature's) are refused, and names that differ only in case",
    "PATCH /api/v1/alerts/channels/{channel_id}": "the same",
    "POST /api/v1/alerts/silences": "ends_at or duration_s, not both; it ends after it starts "
    "and after now (the clock)",
    f"POST {INV}/ssl/{{domain}}": "the domain must be verified; custom needs cert_data",
    f"POST {INV}/ssl/{{domain}}/upload": "PEM contents: a certificate for the domain, its key",
    f"POST {INV}/ssl/{{domain}}/revoke": "the certificate may not be revoked already",
    f"POST {INV}/edge/bundles": "the archive's contents",
    f"POST {INV}/edge/deploy": "the bundle and the regions must exist (with live nodes)",
    f"PATCH {INV}/edge/deployments/{{deployment_id}}": "the regions must exist (live nodes)",
    f"PUT {INV}/functions/{{name}}": "the code must compile (the runtime's check), counted in "
    "UTF-8 bytes; routes are required on the first deploy, their hosts must be domains of the "
    "project, their patterns HOST/PATH with * only last, no two overlapping; a variable is in "
    "env or in secrets, its value counted in bytes",
    f"POST {INV}/functions/check": "the code is counted in UTF-8 bytes, without NUL",
    f"GET {INV}/functions/{{name}}/metrics": "?region= names a location or region of the stored "
    "vocabulary",
    "GET /api/v1/costs": "the month must have started (the clock), from 1970-01",
    "GET /api/v1/costs/all": "the month must have started (the clock), from 1970-01",
    "PUT /api/v1/costs/model": "lb_tiers: names unique, max_backends increasing, only the last "
    "unlimited",
    "PATCH /api/v1/costs/budgets/{budget_id}": "id may only repeat its current value",
    "POST /api/v1/iac/plan": "the document is a file resolved: its sections are checked by "
    "their own models (the file's JSON Schema, /api/v1/iac/schema) and against the stored state",
    "POST /api/v1/iac/apply": "the same, and a saved plan's state must be the live state's",
    "PUT /api/v1/security/compliance": "the value a requirement takes depends on the "
    "requirement (none, a number in its range, 1.2 or 1.3); each requirement once",
}
# The OCSP responder answers a request that is not DER OCSP with 400, as CAs' responders do
# (its schema can only say "bytes" and "a path segment").
NOT_OCSP = {
    "GET /ocsp/{encoded}": "the path must be the base64 of a DER OCSP request",
    "POST /ocsp": "the body must be one DER OCSP request",
}


def config() -> str:
    lines = []
    expected = '"2xx", "3xx", "401", "403", "404", "409", "422", "429"'
    for name in sorted(STATE_OR_CROSS_FIELD) + sorted(NOT_OCSP):
        statuses = expected + (', "400"' if name in NOT_OCSP else "")
        lines += [
            "[[operations]]",
            f'include-name = "{name}"',
            f"checks.positive_data_acceptance.expected-statuses = [{statuses}]",
            "",
        ]
    # A full backup of the test cluster per example (pg_basebackup copies every database of
    # it): its one-field body needs few examples.
    lines += ["[[operations]]", 'include-name = "POST /api/v1/backups"',
              "generation.max-examples = 2", ""]  # fmt: skip
    return "\n".join(lines)


@pytest.mark.integration
@pytest.mark.timeout(900)
def test_fuzz_api(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """On PostgreSQL, the stricter of the two databases (types, lengths, constraints checked
    by the server): what the schema lets through and the API refuses is the same on SQLite, whose
    own behaviour the API tests cover on both."""
    closed = free_port()  # nothing listens there: every outside call is refused at once
    cluster = request.getfixturevalue("pg_cluster")
    env = clean_env(
        EDGEPLANE_DNS_RESOLVERS=f"127.0.0.1:{closed}",
        EDGEPLANE_VERIFY_NS_PORT=str(closed),
        EDGEPLANE_VERIFY_HTTP_PORT=str(closed),
        EDGEPLANE_SMTP_HOST="127.0.0.1",
        EDGEPLANE_SMTP_PORT=str(closed),
        EDGEPLANE_ACME_DIRECTORY=f"http://127.0.0.1:{closed}/directory",
        EDGEPLANE_DATABASE_URL=cluster.create_database(f"fuzz{os.getpid()}"),
    )
    cp = start_up(tmp_path / "home", env=env)
    st: subprocess.Popen[str] | None = None
    try:
        started = time.monotonic()
        st = _schemathesis(cp, tmp_path)
        st.wait(timeout=800)
        out = (tmp_path / "st.out").read_text()
        err = (tmp_path / "st.err").read_text()
        tail = out[-20000:]
        print(f"schemathesis: {time.monotonic() - started:.0f} s\n{tail}")
        assert st.returncode == 0, tail + err[-5000:]
        log = cp.output()
        assert "Traceback" not in log, log[-5000:]
    finally:
        if st is not None and st.poll() is None:
            st.kill()
            st.wait()
        assert cp.stop() == 0, cp.output()[-5000:]


def _schemathesis(cp: ControlPlane, work: Path) -> subprocess.Popen[str]:
    token = cp.token
    whoami = httpx.get(f"{cp.url}/api/v1/whoami", headers={"Authorization": f"Bearer {token}"})
    cfg = work / "schemathesis.toml"
    cfg.write_text(config())
    st = Path(sys.executable).with_name("st")
    return subprocess.Popen(
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
            "EDGEPLANE_FUZZ_TOKEN_ID": str(whoami.json()["token_id"]),
        },
        # files, not pipes: a full pipe would stall one run while the other is read
        stdout=(work / "st.out").open("w"),
        stderr=(work / "st.err").open("w"),
        text=True,
        cwd=work,
    )
