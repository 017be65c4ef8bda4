"""A data center's health from what the edge sees (``edgeplane.dr.health.judge``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from edgeplane.dr.health import Report, ServerSeen, Verdict, judge

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
POOL = "lb.p.web"
WATCHED = [(POOL, "a1"), (POOL, "a2")]
SERVERS = [ServerSeen("a1"), ServerSeen("a2")]


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


def report(
    node: str, backend: str, state: str, changed: float = 5, checked: float = 1, pool: str = POOL
) -> Report:
    return Report(node, pool, backend, state, f"{state} reason", ago(checked), ago(changed))


def verdict(
    reports: list[Report],
    live: tuple[str, ...] = ("edge-a", "edge-b"),
    servers: list[ServerSeen] = SERVERS,
) -> Verdict:
    return judge(WATCHED, reports, live, servers, NOW, metrics_max_age_s=300)


def test_down_when_every_live_node_reports_every_backend_down() -> None:
    v = verdict(
        [
            report("edge-a", "a1", "down", changed=4),
            report("edge-a", "a2", "down", changed=3),
            report("edge-b", "a1", "down", changed=6),
            report("edge-b", "a2", "down", changed=2),
        ]
    )
    assert v.state == "down"
    assert v.since == ago(2)  # when the last of them went down
    assert "2 backend(s) down" in v.reason and v.detail["reporting_nodes"] == ["edge-a", "edge-b"]


def test_one_backend_up_on_one_node_is_up() -> None:
    v = verdict(
        [
            report("edge-a", "a1", "down"),
            report("edge-a", "a2", "down"),
            report("edge-b", "a1", "down"),
            report("edge-b", "a2", "up", changed=30),
        ]
    )
    assert v.state == "up" and v.since == ago(30)
    assert v.reason == "a2 is up for edge node edge-b"


def test_what_does_not_count() -> None:
    stale = report("edge-a", "a1", "up", checked=600)  # a backend the node no longer checks
    dead_node = report("edge-c", "a1", "up")  # a node that is not live
    other = report("edge-a", "b1", "up")  # not a backend of this data center
    other_pool = report("edge-a", "a1", "up", pool="lb.p.api")
    unknown = report("edge-a", "a2", "unknown")
    downs = [report("edge-b", "a1", "down"), report("edge-b", "a2", "down")]
    v = verdict([stale, dead_node, other, other_pool, unknown, *downs])
    assert v.state == "down", v


def test_without_reports_the_servers_metrics_decide() -> None:
    fresh = [ServerSeen("a1", ago(30)), ServerSeen("a2", ago(900))]
    assert verdict([], servers=fresh).state == "up"
    stale = [ServerSeen("a1", ago(400)), ServerSeen("a2", ago(900))]
    v = verdict([], servers=stale)
    assert v.state == "down" and v.since == ago(400) + timedelta(seconds=300)
    assert "no server has reported metrics for 300 s" in v.reason
    never = verdict([], servers=[ServerSeen("a1"), ServerSeen("a2")])
    assert never.state == "unknown" and never.since is None


def test_reports_win_over_stale_metrics_and_no_live_node_means_no_report() -> None:
    stale = [ServerSeen("a1", ago(4000))]
    assert verdict([report("edge-a", "a1", "up")], servers=stale).state == "up"
    assert verdict([report("edge-a", "a1", "down")], live=(), servers=[]).state == "unknown"
