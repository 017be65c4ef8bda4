"""What an agent keeps out of its memory: the ``cryptography`` library (8 MiB of native code,
never unloaded) is loaded only for what needs it: a signed zone's keys, and the default
certificate, which an agent makes in a child process; the command-line libraries (typer,
click, rich, pygments) not at all: ``edgeplane edge`` execs ``edgeplane.node.agent.main``."""

from __future__ import annotations

import json
import subprocess
import sys

_AGENT = """
import json, sys
from edgeplane.node.agent import main
main.without_httpx_cli()  # as main.run does first
import edgeplane.node.agent.agent, edgeplane.node.agent.lock, edgeplane.node.agent.paths
import edgeplane.node.nginx.engine, edgeplane.node.powerdns.geo, edgeplane.node.powerdns.engine
from edgeplane.node.nginx.default_cert import default_cert
from edgeplane.node.powerdns.plan import plan
from edgeplane.protocol.config import RRSetSpec, ZoneSpec

def loaded():
    return sorted(m for m in sys.modules if m.split(".")[0] == "cryptography")

zone = ZoneSpec(
    name="a.example.",
    serial=1,
    rrsets=(RRSetSpec(name="a.example.", type="A", ttl=60, records=("192.0.2.1",)),),
)
out = {"imports": loaded()}
cli = {"typer", "click", "rich", "pygments"}
out["cli"] = sorted(
    m for m in sys.modules if m.split(".")[0] in cli or m.startswith("edgeplane.cli")
)
plan({}, (zone,))  # a zone to create
plan({"a.example.": {("a.example.", "A"): (60, ("192.0.2.2",))}}, (zone,))  # one to patch
out["plans"] = loaded()
pem = default_cert()
out["pem"] = pem.decode()
out["default_cert"] = loaded()
print(json.dumps(out))
"""


def test_an_agent_loads_cryptography_for_nothing_an_unsigned_node_does() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _AGENT], capture_output=True, text=True, timeout=120, check=True
    )
    out = json.loads(done.stdout)
    assert out["imports"] == []
    assert out["cli"] == []
    assert out["plans"] == []
    assert out["default_cert"] == []
    assert "-----BEGIN PRIVATE KEY-----" in out["pem"]
    assert "-----BEGIN CERTIFICATE-----" in out["pem"]
