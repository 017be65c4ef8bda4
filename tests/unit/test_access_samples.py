"""Access log samples: the newest lines per domain, bounded, reduced, put back, paused on 404."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime

import pytest

from edgeplane.node.agent.access_samples import (
    LOG_LINES_PER_DOMAIN,
    PAUSE_S,
    AccessSampler,
    reduce,
)
from edgeplane.node.agent.analytics import TrafficAggregator
from edgeplane.node.agent.client import Rejected, Unreachable
from edgeplane.protocol.messages import (
    ACCESS_LOG_AGENT_MAX,
    ACCESS_LOG_PATH_MAX,
    AccessLogLine,
    AccessLogReport,
)

T0 = datetime(2026, 11, 22, 4, 25, 24, tzinfo=UTC)


def line(
    uri: str = "/",
    *,
    host: str = "a.test",
    site: str = "p1",
    status: int = 200,
    at: str = "2026-11-22T05:25:24+01:00",
    ua: str = "curl/8.0",
    cache: str = "MISS",
    upstream: str = "0.004",
) -> bytes:
    """A line as nginx writes it with the edge_json log_format (escape=json)."""
    doc = (
        f'{{"time":"{at}","host":"{host}","site":"{site}","status":{status},'
        f'"bytes_sent":123,"request_time":0.005,"upstream_response_time":"{upstream}",'
        f'"cache":"{cache}","source":"","remote_addr":"10.1.2.3","method":"GET",'
        f'"uri":{json.dumps(uri)},"ua":{json.dumps(ua)}}}'
    )
    return doc.encode()


def paths(report: AccessLogReport | None, domain: str | None = None) -> list[str]:
    assert report is not None
    return [x.path for x in report.lines if domain is None or x.domain == domain]


def test_a_line_is_reduced_to_the_fields_people_read() -> None:
    sample = reduce(line("/api/v1/items?page=2", cache="hit", upstream="0.002, 0.003"))
    assert sample == AccessLogLine(
        site="p1",
        domain="a.test",
        at=T0,
        method="GET",
        path="/api/v1/items?page=2",  # the query string is kept
        status=200,
        bytes_sent=123,
        cache="HIT",
        client="10.1.2.3",
        request_ms=5.0,
        upstream_ms=5.0,  # every try added up
        user_agent="curl/8.0",
    )
    none = reduce(line(upstream="-", ua="", cache=""))
    assert none is not None
    assert (none.upstream_ms, none.user_agent, none.cache) == (None, None, None)


def test_long_and_odd_values_are_capped_and_escaped() -> None:
    sample = reduce(line("/" + "a" * 5000, ua="x" * 3000))
    assert sample is not None
    assert len(sample.path) == ACCESS_LOG_PATH_MAX
    assert sample.user_agent is not None and len(sample.user_agent) == ACCESS_LOG_AGENT_MAX
    # nginx's JSON escaping keeps control characters (as \u0001) and bytes that are not
    # UTF-8 as they came: the first are percent-encoded, the second replaced.
    sample = reduce(line("/a\x01b\x85", ua="bad\tagent"))
    assert sample is not None
    assert sample.path == "/a%01b%C2%85" and sample.user_agent == "bad%09agent"
    raw = line("/caf", ua="x").replace(b"/caf", b"/caf\xe9")
    sample = reduce(raw)
    assert sample is not None and sample.path == "/caf\ufffd"
    # What is not a line of a site, or not valid, is no sample.
    assert reduce(b"not json") is None
    assert reduce(line(status=999)) is None
    assert reduce(line(at="yesterday")) is None


def test_the_analytics_count_a_line_that_is_not_utf8() -> None:
    """The URI and the user agent in the log: bytes that are not UTF-8 must not cost the
    analytics the line."""
    aggregator = TrafficAggregator()
    aggregator.add_lines([line("/caf").replace(b"/caf", b"/caf\xe9")])
    assert aggregator.skipped == 0
    assert [m.requests for m in aggregator.changed()] == [1]


def test_the_newest_lines_per_domain_are_kept_and_the_rest_counted() -> None:
    sampler = AccessSampler()
    sampler.add_lines([line(f"/{i}") for i in range(150)])
    sampler.add_lines([line("/b", host="b.test")])
    assert len(sampler) == LOG_LINES_PER_DOMAIN + 1
    report = sampler.take()
    assert report is not None and report.dropped == 50
    assert paths(report, "a.test") == [f"/{i}" for i in range(50, 150)]  # oldest first
    assert paths(report, "b.test") == ["/b"]
    # Taken: the sampler starts afresh.
    assert sampler.take() is None and len(sampler) == 0
    # Over several reads the bound holds too: the newest stay.
    for start in range(0, 300, 30):
        sampler.add_lines([line(f"/{i}") for i in range(start, start + 30)])
    report = sampler.take()
    assert paths(report) == [f"/{i}" for i in range(200, 300)] and report is not None
    assert report.dropped == 200


def test_equal_lines_stay_repeated_and_unknown_hosts_are_not_kept() -> None:
    sampler = AccessSampler()
    same = line("/same")
    sampler.add_lines([same] * 5 + [line("/x", site=""), b"garbage", b'{"host":"a.test"}'])
    report = sampler.take()
    assert paths(report) == ["/same"] * 5
    assert report is not None and report.dropped == 0
    assert sampler.skipped == 0  # unknown hosts and lines without a site are not sampled


def test_the_total_bound_drops_the_quietest_domains_first() -> None:
    sampler = AccessSampler(per_domain=10, total=25)
    sampler.add_lines([line(f"/a{i}", host="a.test") for i in range(10)])
    sampler.add_lines([line(f"/b{i}", host="b.test") for i in range(10)])
    sampler.add_lines([line(f"/c{i}", host="c.test") for i in range(10)])
    assert len(sampler) == 25
    report = sampler.take()
    assert report is not None and report.dropped == 5
    assert paths(report, "a.test") == [f"/a{i}" for i in range(5, 10)]
    assert len(paths(report, "b.test")) == len(paths(report, "c.test")) == 10


def test_long_lines_are_bounded_by_their_bytes_too() -> None:
    long_line = line("/" + "a" * 1900, ua="x" * 2000)
    sampler = AccessSampler(max_bytes=10 * len(long_line))
    sampler.add_lines([long_line] * 30 + [line("/short", host="b.test")])
    report = sampler.take()
    assert report is not None and len(report.lines) <= 10
    assert paths(report, "b.test") == ["/short"]  # the busy, quieter-since domain paid
    assert report.dropped == 31 - len(report.lines)
    # Put back (reduced: user agents cut to 512), they are bounded the same way.
    sampler.max_bytes = 3 * len(long_line)
    sampler.add_lines([line("/new", host="b.test")])
    sampler.restore(report)
    assert 0 < sampler.held_bytes <= sampler.max_bytes
    again = sampler.take()
    assert again is not None and "/new" in paths(again)
    assert again.dropped == report.dropped + len(report.lines) + 1 - len(again.lines)


def test_lines_logged_before_the_agent_started_are_not_sampled() -> None:
    since = T0.timestamp()
    sampler = AccessSampler(since=since)
    old = line("/old", at="2026-11-22T05:20:00+01:00")
    sampler.add_lines([old, old])
    assert len(sampler) == 0
    sampler.add_lines([old, line("/new"), old])  # from the first new line on, all are kept
    assert paths(sampler.take()) == ["/new", "/old"]


def test_an_invalid_line_is_skipped_not_the_report() -> None:
    sampler = AccessSampler()
    sampler.add_lines([line("/ok"), line("/bad", status=700), line("/ok2")])
    assert paths(sampler.take()) == ["/ok", "/ok2"]
    assert sampler.skipped == 1


def test_a_report_not_sent_is_put_back_as_older_within_the_bounds() -> None:
    sampler = AccessSampler(per_domain=5, total=100)
    sampler.add_lines([line(f"/{i}") for i in range(4)])
    report = sampler.take()
    assert report is not None
    sampler.add_lines([line("/new1"), line("/new2")])
    sampler.restore(report)
    again = sampler.take()
    # 3 slots were free for the 4 lines put back: the newest 3 of them, the oldest dropped.
    assert paths(again) == ["/1", "/2", "/3", "/new1", "/new2"]
    assert again is not None and again.dropped == 1


class FakeControlPlane:
    def __init__(self) -> None:
        self.reports: list[AccessLogReport] = []
        self.fail: Exception | None = None

    async def report_access_logs(self, node_id: str, body: AccessLogReport) -> None:
        if self.fail is not None:
            raise self.fail
        # what goes on the wire must be valid for the control plane
        self.reports.append(AccessLogReport.model_validate_json(body.model_dump_json()))


def test_ship_retries_and_pauses_after_a_404(caplog: pytest.LogCaptureFixture) -> None:
    now = [1000.0]
    sampler = AccessSampler(clock=lambda: now[0])
    cp = FakeControlPlane()

    def ship() -> int:
        return asyncio.run(sampler.ship(cp, "node-1"))

    assert ship() == 0  # nothing to send
    sampler.add_lines([line("/1")])
    cp.fail = Unreachable("down")
    assert ship() == 0 and len(sampler) == 1  # kept for the next report
    cp.fail = None
    sampler.add_lines([line("/2")])
    assert ship() == 2 and paths(cp.reports[-1]) == ["/1", "/2"]
    # Refused with 422: dropped (sending it again would not help).
    sampler.add_lines([line("/3")])
    cp.fail = Rejected(422, "bad")
    assert ship() == 0 and len(sampler) == 0
    # An older control plane: 404, logged once at debug, nothing kept or sent for a while.
    caplog.set_level(logging.DEBUG, logger="edgeplane.node.agent.access_samples")
    cp.fail = Rejected(404, "POST /nodes/n/logs: Not Found")
    for _ in range(3):
        sampler.add_lines([line("/4")])
        assert ship() == 0
        now[0] += 1
    assert sampler.paused and len(sampler) == 0
    notes = [r for r in caplog.records if "does not take access log lines" in r.message]
    assert len(notes) == 1 and notes[0].levelno == logging.DEBUG
    now[0] += PAUSE_S
    cp.fail = None
    sampler.add_lines([line("/5")])
    assert ship() == 1 and paths(cp.reports[-1]) == ["/5"]
