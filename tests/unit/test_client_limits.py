"""Per-client limits: the under-attack values, what the snapshot carries, what nginx gets
(per site and per node), and how the agent counts the refusals."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from edgeplane.model.cdn import EdgeSecurity
from edgeplane.model.client_limits import (
    UNDER_ATTACK,
    UNDER_ATTACK_RATE,
    ClientLimits,
    effective,
    effective_rate,
)
from edgeplane.node.agent.analytics import TrafficAggregator
from edgeplane.node.agent.site_totals import SiteTotals
from edgeplane.node.nginx.local import LocalHealth, NodeLocal
from edgeplane.node.nginx.render import render
from edgeplane.node.nginx.render_limits import greater_than, render_client_limits
from edgeplane.protocol.config import (
    BackendSpec,
    ClientLimitsSpec,
    EdgeConfig,
    NodeSpec,
    PoolSpec,
    SiteSpec,
)
from edgeplane.snapshot.build import CDNState, DesiredState, client_limits_spec, site_spec

LOCAL = NodeLocal(prefix=Path("/tmp/x"), node_name="edge-1", http_port=8080)


def test_under_attack_takes_the_tightest_of_each() -> None:
    own = ClientLimits(max_connections=5, header_timeout_s=30, max_body_bytes=1024)
    assert effective(own, False) == own
    tight = effective(own, True)
    assert tight.max_connections == 5  # the project's own, tighter
    assert tight.header_timeout_s == UNDER_ATTACK.header_timeout_s
    assert tight.max_body_bytes == 1024
    assert tight.keepalive_timeout_s == UNDER_ATTACK.keepalive_timeout_s
    assert effective(ClientLimits(), True) == UNDER_ATTACK
    assert effective_rate(None, False) is None
    assert effective_rate(None, True) == UNDER_ATTACK_RATE
    assert effective_rate((5, 100), True) == (5, UNDER_ATTACK_RATE[1])
    assert effective_rate((500, 0), True) == (UNDER_ATTACK_RATE[0], 0)


def test_limits_are_validated() -> None:
    for bad in (
        {"max_connections": 0},
        {"header_timeout_s": 0},
        {"max_header_bytes": 100},
        {"max_header_bytes": 40000},
        {"max_body_bytes": 0},
        {"other": 1},
    ):
        with pytest.raises(ValidationError):
            ClientLimits.model_validate(bad)
    # stored configs from before: the defaults
    assert EdgeSecurity.model_validate({}).limits == ClientLimits()
    assert EdgeSecurity.model_validate({}).under_attack is False


@pytest.mark.parametrize("limit", [1, 9, 10, 99, 100, 1023, 1024, 2048, 1048576, 10485760, 90909])
def test_greater_than_matches_exactly_the_larger_numbers(limit: int) -> None:
    regex = re.compile(f"^{greater_than(limit)}$")
    numbers = set(range(max(0, limit - 300), limit + 300))
    numbers |= {0, 1, 10 * limit, limit * 10 + 9, 10 ** len(str(limit)) - 1, 10 ** len(str(limit))}
    for n in numbers:
        assert bool(regex.match(str(n))) == (n > limit), (limit, n)
        assert bool(regex.match("000" + str(n))) == (n > limit), (limit, n)
    assert not regex.match("") and not regex.match("12a")


def _site(sid: str, limits: ClientLimitsSpec | None = None) -> SiteSpec:
    return SiteSpec(id=sid, domains=(f"{sid}.test",), pool="origin.x", client_limits=limits)


def test_a_site_without_limits_dumps_as_before() -> None:
    plain = _site("a")
    assert "client_limits" not in plain.model_dump(mode="json")
    assert "client_limits" not in plain.model_dump_json()
    limited = _site("a", ClientLimitsSpec(max_connections=3))
    doc = limited.model_dump(mode="json")
    assert doc["client_limits"]["max_connections"] == 3
    assert SiteSpec.model_validate(doc) == limited
    assert SiteSpec.model_validate_json(plain.model_dump_json()) == plain


def test_nothing_is_rendered_without_limits() -> None:
    out = render_client_limits([_site("a"), _site("b")])
    assert (out.http, out.server, out.checks) == ("", [], [])


def test_per_site_and_per_node_values() -> None:
    sites = [
        _site("a", ClientLimitsSpec(max_connections=5, header_timeout_s=20, max_body_bytes=1024)),
        _site("b", ClientLimitsSpec(max_connections=5, header_timeout_s=8, send_timeout_s=30)),
        _site("c", ClientLimitsSpec(max_connections=20, max_header_bytes=4096)),
        _site("d"),
    ]
    out = render_client_limits(sites)
    # connection limits: one zone per distinct value, keyed per site and client
    assert out.server.count("limit_conn cl_5 5;") == 1 and "limit_conn cl_20 20;" in out.server
    assert '"a" "$site_id:$binary_remote_addr";' in out.http
    assert "limit_conn_status 503;" in out.http
    # timeouts: node-wide, the tightest asked for; none asked: nginx's default (not written)
    assert "client_header_timeout 8s;" in out.server
    assert "send_timeout 30s;" in out.server
    assert not any(line.startswith(("client_body_timeout", "keepalive")) for line in out.server)
    # sizes: per site, checked before routing
    assert out.checks == [
        "if ($header_too_large) { return 431; }",
        "if ($body_too_large) { return 413; }",
    ]
    assert '"c" 4096;' in out.http and '"a" 1024;' in out.http
    assert "client_max_body_size" not in "".join(out.server)  # the edge's 100m stays


def test_a_body_limit_above_the_default_raises_the_node_and_keeps_the_others() -> None:
    big = 500 * 1024 * 1024
    out = render_client_limits([_site("a", ClientLimitsSpec(max_body_bytes=big)), _site("b")])
    assert f"client_max_body_size {big};" in out.server
    # b (no limit of its own) keeps the edge's 100 MiB; a is not checked below the node's
    assert "default 104857600;" in out.http and '"a" "";' in out.http
    assert out.checks == ["if ($body_too_large) { return 413; }"]


def test_release_renders_the_limits_and_nothing_else_changes() -> None:
    pool = PoolSpec(
        id="origin.x",
        algorithm="round_robin",
        backends=(BackendSpec(key="o", host="127.0.0.1", port=9),),
    )

    def config(*sites: SiteSpec) -> EdgeConfig:
        return EdgeConfig(
            revision=1,
            node=NodeSpec(id="n", name="edge-1", region="r"),
            sites=sites,
            pools=(pool,),
        )

    plain = render(config(_site("a"), _site("b")), LOCAL, LocalHealth())
    limited = render(
        config(_site("a", client_limits_spec(ClientLimits(), True)), _site("b")),
        LOCAL,
        LocalHealth(),
    )
    changed = {name for name in plain if plain[name] != limited[name]}
    assert changed <= {"access.conf", "servers.conf", "status.conf"}
    servers = limited["servers.conf"].decode()
    assert "client_header_timeout 5s;" in servers and "keepalive_timeout 10s;" in servers
    assert "limit_conn cl_20 20;" in servers
    assert "if ($header_too_large) { return 431; }" in servers


def test_the_snapshot_carries_the_effective_limits() -> None:
    sec = EdgeSecurity(limits=ClientLimits(max_connections=50), rate_limit={"rate": 100})  # type: ignore[arg-type]
    state = DesiredState(cdn={"p": CDNState(security=sec)})
    spec = site_spec(state, "p", ("p.test",), None)
    assert spec.client_limits == ClientLimitsSpec(max_connections=50)
    assert spec.rate_limit is not None and spec.rate_limit.rate == 100
    attacked = sec.model_copy(update={"under_attack": True})
    state = DesiredState(cdn={"p": CDNState(security=attacked)})
    spec = site_spec(state, "p", ("p.test",), None)
    assert spec.client_limits is not None and spec.client_limits.under_attack
    assert spec.client_limits.max_connections == UNDER_ATTACK.max_connections
    assert spec.rate_limit is not None and spec.rate_limit.rate == UNDER_ATTACK_RATE[0]
    # no limits, not under attack: nothing (the site renders as before)
    state = DesiredState(cdn={"p": CDNState()})
    assert site_spec(state, "p", ("p.test",), None).client_limits is None


def _line(status: int, upstream: str = "", cache: str = "") -> bytes:
    return (
        f'{{"time":"2026-01-01T00:00:01+00:00","host":"a.test","site":"p","status":{status},'
        f'"bytes_sent":10,"request_time":0.001,"upstream_response_time":"{upstream}",'
        f'"cache":"{cache}","source":"","remote_addr":"127.0.0.2"}}'
    ).encode()


def test_the_agent_counts_each_limits_refusals() -> None:
    totals = SiteTotals()
    agg = TrafficAggregator(totals=totals)
    agg.add_lines(
        [_line(503)] * 7
        + [_line(408)] * 2
        + [_line(413), _line(431), _line(429)]
        + [_line(503, upstream="0.010")]  # the origin's own 503
        + [_line(503, cache="HIT")]  # an origin's 503 served from cache
    )
    [minute] = agg.changed()
    assert minute.blocked == {
        "connection_limit": 7,
        "timeout": 2,
        "too_large": 2,
        "rate_limit": 1,
    }
    assert totals.site("p").blocked == minute.blocked
