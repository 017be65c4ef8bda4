"""The README's quick start and SDK snippets run as written.

The blocks come from README.md by their markers (an HTML comment right before each fenced
block): ``<!-- quickstart: up ... -->`` is the command that starts Edgeplane, which the test
runs itself (``edgeplane up`` on free ports, as ``start_up`` does); ``<!-- quickstart: run -->``
blocks run, in order, as one ``bash`` script with ``set -e``, from the checkout (for
``$PWD/.venv/bin``); ``<!-- quickstart: not run (why) -->`` blocks need the outside world and
are left out; ``<!-- sdk: run -->`` blocks are Python programs run one after the other against
the same control plane. Only the ports (8800, 8080, 8443, 8053, 3000, 3001) and the state
directory (``./.edgeplane``) are rewritten. Then the behaviour the README promises is checked:
the redirect, MISS then HIT with X-Served-By through the edge, the DNS answers, the inventory,
and that the snippets left the quick start's project as it was.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from edge_agents import searchable_tmp, wait_for
from processes import ControlPlane, clean_env, free_port, start_up

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parents[2]
README = ROOT / "README.md"
PORTS = (8800, 8080, 8443, 8053, 3000, 3001)
MARKED = re.compile(r"<!-- (quickstart|sdk): ([^>]*?) -->\n```(\w+)\n(.*?)^```", re.S | re.M)
FENCE = re.compile(r"^```", re.M)  # opening and closing lines


@dataclass(frozen=True)
class Block:
    kind: str  # quickstart | sdk
    label: str  # up | run | not run (why)
    lang: str
    code: str


def blocks() -> list[Block]:
    text = README.read_text()
    return [Block(*m.groups()) for m in MARKED.finditer(text)]


def section(name: str, text: str) -> str:
    start = text.index(f"\n## {name}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def substitute(code: str, ports: dict[int, int], home: Path) -> str:
    for old, new in ports.items():
        code = re.sub(rf"(?<![\d.]){old}(?!\d)", str(new), code)
    return re.sub(r"(?<![\w/.-])(?:\./)?\.edgeplane(?=[/\s\"']|$)", str(home), code)


def test_every_block_of_the_quick_start_and_the_sdk_is_marked() -> None:
    """A block added without a marker would be neither run nor said not to run."""
    text = README.read_text()
    for name in ("Quick start", "The Python SDK"):
        part = section(name, text)
        fences = len(FENCE.findall(part)) // 2
        marked = len(MARKED.findall(part))
        assert fences == marked, f"{name}: {fences} blocks, {marked} marked"
    found = blocks()
    assert next(b.label for b in found if b.kind == "quickstart").startswith("up")
    assert {b.label.split(" (")[0] for b in found} == {"up", "run", "not run"}
    assert all(b.lang == "python" for b in found if b.kind == "sdk")
    assert all(
        b.lang == "bash" for b in found if b.kind == "quickstart" and not b.label.startswith("up")
    )
    for b in found:
        if b.label.startswith("not run"):
            assert re.fullmatch(r"not run \(.+\)", b.label), b.label  # says why


def test_substitution_rewrites_only_ports_and_the_state_directory() -> None:
    ports = {p: 40000 + i for i, p in enumerate(PORTS)}
    code = (
        "export EDGEPLANE_URL=http://127.0.0.1:8800 EDGEPLANE_TOKEN=$(cat .edgeplane/admin-token)\n"
        "edgeplane demo-origin --port 3000 --port 3001 &\n"
        "edgeplane cdn configure --rule '/static/*:86400' --hsts 31536000\n"
        "curl --cacert .edgeplane/ca.pem https://app.localhost:8443/ # 18080 30001 1.8053\n"
        "scripts/up --home ./.edgeplane\n"
    )
    assert substitute(code, ports, Path("/t/h")) == (
        "export EDGEPLANE_URL=http://127.0.0.1:40000 EDGEPLANE_TOKEN=$(cat /t/h/admin-token)\n"
        "edgeplane demo-origin --port 40004 --port 40005 &\n"
        "edgeplane cdn configure --rule '/static/*:86400' --hsts 31536000\n"
        "curl --cacert /t/h/ca.pem https://app.localhost:40002/ # 18080 30001 1.8053\n"
        "scripts/up --home /t/h\n"
    )


# The quick start, then the snippets, against one real `edgeplane up` ---------------------


@dataclass
class World:
    cp: ControlPlane
    ports: dict[int, int]
    base: Path
    outputs: list[str]  # per run block
    trace: str

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.cp.token}"}

    def get(self, path: str, **params: str) -> httpx.Response:
        return httpx.get(f"{self.cp.url}{path}", headers=self.headers(), params=params)


def _port_is_closed(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    found = blocks()
    up = [b for b in found if b.kind == "quickstart" and b.label.startswith("up")]
    assert len(up) == 1 and "scripts/up --home ./.edgeplane" in up[0].code
    base = searchable_tmp("edgeplane-readme-")
    home = base / "home"
    cp = start_up(home, edge=True)
    assert cp.http_port and cp.https_port and cp.dns_port
    ports = {
        8800: int(cp.url.rsplit(":", 1)[1]),
        8080: cp.http_port,
        8443: cp.https_port,
        8053: cp.dns_port,
        3000: free_port(),
        3001: free_port(),
    }
    run = [b for b in found if b.kind == "quickstart" and b.label == "run"]
    script = ["set -e"]
    for i, b in enumerate(run):
        script += [f'echo "::block {i}::"', substitute(b.code, ports, home)]
    (base / "quickstart.sh").write_text("\n".join(script) + "\n")
    out_path, trace_path = base / "stdout", base / "trace"
    # The demo origins run in the background: output to files (a pipe would stay open), a
    # session of its own so that whatever is left can be stopped at the end.
    env = clean_env(HOME=str(base), PS4="+ ")
    with out_path.open("w") as out, trace_path.open("w") as trace:
        proc = subprocess.Popen(
            ["bash", "-x", str(base / "quickstart.sh")],
            cwd=ROOT,
            stdout=out,
            stderr=trace,
            env=env,
            start_new_session=True,
        )
    try:
        code = proc.wait(timeout=240)
        stdout, traced = out_path.read_text(), trace_path.read_text()
        assert code == 0, f"the quick start failed ({code}):\n{traced}\n{stdout}\n{cp.output()}"
        outputs = re.split(r"^::block \d+::\n", stdout, flags=re.M)[1:]
        assert len(outputs) == len(run)
        yield World(cp, ports, base, outputs, traced)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        assert cp.stop() == 0, cp.output()
        shutil.rmtree(base, ignore_errors=True)


def _output_of(world: World, command: str) -> str:
    """The output of the run block holding ``command``."""
    run = [b for b in blocks() if b.kind == "quickstart" and b.label == "run"]
    for block, output in zip(run, world.outputs, strict=True):
        if command in block.code:
            return output
    raise AssertionError(f"no run block holds {command!r}")


def test_the_site_behind_the_edge(world: World) -> None:
    out = _output_of(world, "edgeplane lb create")
    https = world.ports[8443]
    assert f"308 https://app.localhost:{https}/static/app.js" in out
    # MISS, then HIT, both served by the local edge node.
    statuses = re.findall(r"^x-cache-status: (\w+)$", out, re.M | re.I)
    assert statuses == ["MISS", "HIT"], out
    assert re.findall(r"^x-served-by: (\S+)$", out, re.M | re.I) == ["local", "local"], out
    # The node's DNS answers the site's name.
    assert re.search(r"^app\.localhost\.\t\d+\tIN\tA\t127\.0\.0\.1$", out, re.M), out
    # -q printed only the id: the load balancer the CDN uses, checked every 5 s on /health.
    cdn = world.get("/api/v1/infrastructure/cdn").json()
    lb_id = cdn["origins"][0]["load_balancer"]
    assert re.fullmatch(r"lb-[0-9a-f]{12}", lb_id)
    assert f"+ LB={lb_id}" in world.trace
    lb = world.get(f"/api/v1/infrastructure/loadbalancer/{lb_id}").json()
    assert lb["algorithm"] == "least_conn"
    # its own two endpoints; the scaling group of the auto-scaling block adds its instances
    group = world.get("/api/v1/infrastructure/scaling-groups/web").json()
    instances = {i["server"] for i in group["instances"]}
    own = [e for e in lb["endpoints"] if e not in instances]
    assert own == [f"127.0.0.1:{world.ports[3000]}", f"127.0.0.1:{world.ports[3001]}"], (
        lb["endpoints"],
        instances,
    )
    assert (lb["health_check"]["path"], lb["health_check"]["interval_s"]) == ("/health", 5)
    assert [r["pattern"] for r in cdn["cache_rules"]] == ["/static/*"]
    assert cdn["security"]["hsts_max_age"] == 31536000
    # The purge reached the node; the node table shows its location with its parents.
    assert "objects removed, complete" in out
    assert "us-east (na, americas)" in out


def test_an_edge_function(world: World) -> None:
    out = _output_of(world, "edgeplane function deploy api")
    answers = [json.loads(line) for line in out.splitlines() if line.startswith('{"now"')]
    # version 1, then after the rollback version 3 with version 1's settings
    assert [(a["region"], a["country"]) for a in answers] == [("home", None), ("home", None)], out
    versions = world.get("/api/v1/infrastructure/functions/api/versions").json()["items"]
    assert [(v["version"], v["status"]) for v in versions] == [
        (3, "active"),
        (2, "superseded"),
        (1, "superseded"),
    ], versions
    assert versions[0]["env"] == versions[2]["env"] == {"REGION_LABEL": "home"}


def test_a_domain_of_its_own(world: World) -> None:
    out = _output_of(world, "edgeplane domain add shop.example.com")
    assert re.search(r"^shop\.example\.com\.\t\d+\tIN\tA\t127\.0\.0\.1$", out, re.M), out
    doc = world.get("/api/v1/infrastructure/domains/shop.example.com").json()
    assert doc["status"] == "active" and doc["locked"] is True and doc["dnssec"] is True
    records = world.get("/api/v1/infrastructure/domains/shop.example.com/records").json()
    mx = [r["values"] for r in records["records"] if r["type"] == "MX"]
    assert mx == [["10 mail.shop.example.com."]], records


def test_the_inventory(world: World) -> None:
    out = _output_of(world, "edgeplane region list")
    # region list: the three levels, each shown where it starts.
    assert re.search(r"^americas\s+na\s+ca-central\s", out, re.M), out
    assert re.search(r"^\s+sa\s+sa-east\s", out, re.M), out
    assert re.search(r"^europe\s+eu\s+eu-central\s", out, re.M), out
    assert "server    edge-fra-1 (Frankfurt edge)" in out
    assert "location  eu-central (eu, europe)" in out
    listed = json.loads(out[out.index("\n{") + 1 :])
    [server] = listed["items"]
    assert (server["id"], server["location"], server["region"], server["region_code"]) == (
        "edge-fra-1", "eu-central", "europe", "eu",
    )  # fmt: skip
    dc = world.get("/api/v1/infrastructure/datacenters/dc-eu-1").json()
    assert (dc["region"], dc["location"], dc["region_type"]) == ("eu", "eu-central", "europe")


def test_the_project_as_a_file(world: World) -> None:
    out = _output_of(world, "edgeplane drift")
    assert "Nothing to change; recorded as applied" in out, out
    assert "! data_centers[dc-eu-1]  (data center changed)" in out, out
    assert "tier: 3 -> 4" in out and "by admin (tok-" in out, out
    assert "~ data_centers[dc-eu-1]  (data center update)" in out and "tier: 4 -> 3" in out, out
    assert "Applied as revision" in out, out
    assert world.get("/api/v1/infrastructure/datacenters/dc-eu-1").json()["tier"] == 3


def test_the_demo_origins_were_stopped(world: World) -> None:
    for port in (world.ports[3000], world.ports[3001]):
        wait_for(lambda p=port: _port_is_closed(p), 5, f"the demo origin on {port} to stop")


def _snippets(world: World) -> list[str]:
    return [
        substitute(b.code, world.ports, world.base / "home") for b in blocks() if b.kind == "sdk"
    ]


def _run_python(code: str, cwd: Path, env: dict[str, str]) -> list[str]:
    cwd.mkdir(parents=True, exist_ok=True)
    (cwd / "snippet.py").write_text(code)
    proc = subprocess.run(
        [sys.executable, "snippet.py"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, f"{code}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr
    return proc.stdout.splitlines()


def test_the_sdk_snippets_run_in_order_and_leave_the_quick_start_alone(world: World) -> None:
    before = world.get("/api/v1/infrastructure/cdn").json()
    env = clean_env(
        EDGEPLANE_URL=world.cp.url,
        EDGEPLANE_TOKEN=world.cp.token,
        EDGEPLANE_HOME=str(world.base / "unused"),
    )
    infra, cdn, domains, edge, iac = _snippets(world)
    where = world.base / "sdk"

    lines = _run_python(infra, where, env)
    server_id, location, code, kind = lines[0].split()
    assert re.fullmatch(r"srv-[0-9a-f]{12}", server_id)
    assert (location, code, kind) == ("us-east", "na", "americas")
    assert lines[1].startswith(f"{server_id} client 1.2.3.4 in US")
    europe = ("eu-central", "eu-north", "eu-west", "uk-south")
    assert lines[2:] == [f"{c} eu europe" for c in europe]

    lines = _run_python(cdn, where, env)
    assert len(lines) == 3 and re.fullmatch(r"\d+ \[[\d.]+\]", lines[0]), lines
    assert f"'127.0.0.1:{world.ports[3000]}'" in lines[1] and lines[2].isdigit()

    lines = _run_python(domains, where, env)
    assert lines[0].startswith("active _edgeplane-challenge.blog.example.com."), lines
    assert lines[1].startswith("True "), lines
    # The serial each node serves (the node may not have the newest one yet).
    assert re.fullmatch(r"\d+ \[\('local', (\d+|None), (True|False)\)\] \[\]", lines[2]), lines

    lines = _run_python(edge, where, env)
    assert lines[0].startswith("1 ['us-east'] 0.0 ") and lines[1].startswith("2 ['us-east'] 0.0 ")
    assert lines[2].startswith("us-east na up "), lines
    assert lines[3] == "[('us-east', 0, None)]" or lines[3].startswith("[('us-east', "), lines
    assert re.fullmatch(r"3 dep-[0-9a-f]{12}", lines[4]), lines

    lines = _run_python(iac, where, env)
    assert [line.split()[:2] for line in lines[:3]] == [
        ["validate", "done"],
        ["create", "done"],
        ["configure", "done"],
    ], lines
    assert "2 to create" in lines[0] and "every online edge node serves" in lines[2], lines
    assert lines[3] == "{'create': 0, 'update': 0, 'replace': 0, 'delete': 0}", lines
    dcs = world.get("/api/v1/infrastructure/datacenters", project="infra-demo").json()
    assert [d["id"] for d in dcs["items"]] == ["dc-1"]

    # The snippets worked in their own project: the quick start's is as it was.
    assert world.get("/api/v1/infrastructure/cdn").json() == before
    assert world.get("/api/v1/infrastructure/edge/deployments").json() == []
    shop = world.get("/api/v1/infrastructure/cdn", project="shop").json()
    assert shop["domains"] == ["blog.example.com", "shop.localhost"]

    # The rollback (version 3) rolls out on its own after the snippet returns.
    def rolled_back() -> bool:
        served = world.get("/api/v1/infrastructure/edge/deployments/current", project="shop").json()
        return (served["version"], served["status"]) == (3, "active")

    wait_for(rolled_back, 30, "the rollback of the shop's deployment to be active")


@pytest.mark.parametrize("count", [3])
def test_the_sdk_snippets_run_embedded(tmp_path: Path, count: int) -> None:
    """Without a control plane, on a state directory of their own (the edge deployment
    snippet needs an edge node, so it runs only against `up`)."""
    ports = {p: p for p in PORTS}
    codes = [substitute(b.code, ports, tmp_path) for b in blocks() if b.kind == "sdk"][:count]
    env = clean_env(EDGEPLANE_HOME=str(tmp_path / "home"))
    outputs = [_run_python(code, tmp_path / "run", env) for code in codes]
    assert outputs[0][0].split()[1:] == ["us-east", "na", "americas"]
    assert outputs[1][0].startswith("0 []"), outputs[1]  # no edge node to purge on
    assert outputs[2][1].startswith("True "), outputs[2]
