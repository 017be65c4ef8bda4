"""The agent's uptime checker: targets from a snapshot, states and hourly totals, and its own
requests kept out of the traffic figures."""

from __future__ import annotations

import json

from edgeplane.node.agent.uptime import Probe, UptimeChecker, targets_of, without_own_checks
from edgeplane.protocol.config import CertSpec, EdgeConfig, NodeSpec, SiteSpec


def line(ua: str, addr: str, host: str = "a.example") -> bytes:
    doc = {"time": "2026-12-04T10:00:00+00:00", "host": host, "site": "p", "status": 200,
           "remote_addr": addr, "ua": ua}  # fmt: skip
    return json.dumps(doc, separators=(",", ":")).encode()


def test_own_checks_are_not_traffic() -> None:
    own = line("edgeplane-uptime/0.1.0", "127.0.0.1")
    own_bind = line("edgeplane-uptime/0.1.0", "10.0.0.5")
    spoofed = line("edgeplane-uptime/0.1.0", "203.0.113.9")  # a client elsewhere
    client = line("curl/8", "127.0.0.1")
    kept = without_own_checks([own, own_bind, spoofed, client], ("10.0.0.5",))
    assert kept == [spoofed, client]
    plain = [client, line("curl/8", "203.0.113.9")]
    assert without_own_checks(plain, ()) is plain  # no check among them: the same list


def test_targets_and_the_certificate_that_covers_each() -> None:
    config = EdgeConfig(
        revision=1,
        node=NodeSpec(id="n", name="n", region="us-east"),
        sites=(SiteSpec(id="p", domains=("a.example", "b.example"), pool=None),),
        certs=(
            CertSpec(
                id="c",
                names=("*.example",),
                cert_pem="",
                key_pem="",
                not_after="2027-01-01T00:00:00+00:00",
            ),
        ),
    )
    targets = targets_of(config)
    assert set(targets.domains) == {"a.example", "b.example"}
    assert targets.domains["a.example"][1] is not None


def test_states_change_once_and_hours_add_up() -> None:
    now = [1_800_000_000.0]
    checker = UptimeChecker("127.0.0.1", 8080, None, None, clock=lambda: now[0])
    checker.targets.domains["a.example"] = ("p", None)
    checker._record("a.example", "p", {"http": Probe(True, None, 5.0)})
    [first] = checker.take_changes()
    assert first.up and first.kind == "http"
    checker._record("a.example", "p", {"http": Probe(True, None, 7.0)})
    assert checker.take_changes() == []  # no change, nothing to report
    now[0] += 30
    checker._record("a.example", "p", {"http": Probe(False, "status 502", 3.0)})
    [down] = checker.take_changes()
    assert not down.up and down.error == "status 502"
    [hour] = checker.take_hours()
    assert (hour.checks, hour.failures, hour.latency_ms_sum) == (3, 1, 15.0)
    assert checker.take_hours() == []


def test_the_hours_of_a_domain_no_longer_served_are_dropped() -> None:
    checker = UptimeChecker("127.0.0.1", 8080, None, None, clock=lambda: 1_800_000_000.0)
    for domain in ("a.example", "gone.example"):
        checker.targets.domains[domain] = ("p", None)
        checker._record(domain, "p", {"http": Probe(True, None, 5.0)})
    del checker.targets.domains["gone.example"]  # deleted by a new snapshot meanwhile
    assert [h.target for h in checker.take_hours()] == ["a.example"]
