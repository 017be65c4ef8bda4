"""Per-minute traffic from nginx JSON access log lines, and tailing the log across rotation."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from edgeplane.node.agent.analytics import (
    COUNTRY_CACHE_SIZE,
    LogTailer,
    TrafficAggregator,
    answering_address,
    backend_map,
    bucket_index,
    country_locator,
    request_ms,
    rotate,
    upstream_ms,
)
from edgeplane.protocol.config import BackendSpec, PoolSpec, SiteSpec
from edgeplane.protocol.messages import UPSTREAM_MS_BUCKETS, MinuteTraffic

MINUTE = 1_795_321_500.0  # a minute boundary (divisible by 60)


def line(
    *,
    t: float = MINUTE + 1.5,
    host: str = "s1.test",
    site: str = "p1",
    status: int = 200,
    cache: str = "MISS",
    upstream: str = "0.004",
    size: int = 100,
    uri: str = "/x",
    request_time: str = "0.004",
    addr: str = "127.0.0.1",
    source: str | None = None,
) -> str:
    # Exactly the shape nginx writes with the edge_json log_format (escape=json); "source"
    # only when given (older log formats have none).
    extra = "" if source is None else f',"source":"{source}"'
    return (
        f'{{"ts":"2026-11-22T04:25:24+00:00","msec":{t:.3f},"host":"{host}","site":"{site}",'
        f'"method":"GET","uri":"{uri}","status":{status},"bytes_sent":{size},'
        f'"request_time":{request_time},"upstream_response_time":"{upstream}",'
        f'"upstream_addr":"127.0.0.1:41835","cache":"{cache}","remote_addr":"{addr}"{extra}}}'
    )


def test_upstream_time_parsing_and_buckets() -> None:
    assert upstream_ms("0.004") == 4.0
    assert upstream_ms("0.001, 0.002") == 3.0  # a retry: both tries count
    assert upstream_ms("0.001 : 0.002") == 3.0
    assert upstream_ms("") is None and upstream_ms("-") is None
    assert bucket_index(0.5) == 0 and bucket_index(1.0) == 0 and bucket_index(1.01) == 1
    assert bucket_index(31_000) == len(UPSTREAM_MS_BUCKETS)


def test_aggregates_per_site_domain_and_minute() -> None:
    agg = TrafficAggregator()
    lines = [
        line(cache="MISS", upstream="0.004", size=100),
        line(cache="HIT", upstream="", size=100),
        line(cache="HIT", upstream="", size=100),
        line(cache="STALE", upstream="0.001, 2.000", status=200, size=50),
        line(cache="EXPIRED", upstream="0.120", size=10),
        line(cache="BYPASS", upstream="0.002", status=404, size=10),
        line(cache="MISS", upstream="0.002", status=502, size=10),
        line(host="S2.test", cache="MISS", upstream="0.004"),  # another domain of the site
        line(t=MINUTE + 61, cache="HIT", upstream=""),  # the next minute
        line(site="", host="unknown.test", status=404, cache=""),  # no site: not counted
        "not json",
    ]
    for raw in lines:
        agg.add_line(raw)
    assert agg.skipped == 1
    out = {(m.domain, m.minute): m for m in agg.changed()}
    assert set(out) == {
        ("s1.test", datetime.fromtimestamp(MINUTE, UTC)),
        ("s2.test", datetime.fromtimestamp(MINUTE, UTC)),
        ("s1.test", datetime.fromtimestamp(MINUTE + 60, UTC)),
    }
    m = out[("s1.test", datetime.fromtimestamp(MINUTE, UTC))]
    assert m.site == "p1"
    assert m.requests == 7
    assert m.hits == 3  # HIT x2 + STALE (served from cache)
    assert m.misses == 3  # MISS x2 + EXPIRED; BYPASS is neither
    assert m.bytes_out == 380
    assert m.statuses == {"2xx": 5, "4xx": 1, "5xx": 1}
    assert m.cache == {"MISS": 2, "HIT": 2, "STALE": 1, "EXPIRED": 1, "BYPASS": 1}
    assert len(m.upstream_ms) == len(UPSTREAM_MS_BUCKETS) + 1
    assert sum(m.upstream_ms) == 5  # the two HITs never reached the origin
    assert m.upstream_ms[bucket_index(4.0)] == 1
    assert m.upstream_ms[bucket_index(2001.0)] == 1  # the retried request: 1 + 2000 ms
    assert m.upstream_ms[bucket_index(120.0)] == 1
    assert m.request_ms[bucket_index(4.0)] == 7  # every line, HITs too
    assert m.static == 0 and m.countries == {}  # no bundle; no locate function given

    # Nothing new: nothing to send. A new line re-sends its minute with the full totals.
    assert agg.changed() == []
    agg.add_line(line(cache="HIT", upstream=""))
    again = agg.changed()
    assert len(again) == 1 and again[0].requests == 8 and again[0].hits == 4
    # A failed report puts the minutes back.
    agg.restore(again)
    assert [x.requests for x in agg.changed()] == [8]
    agg.forget_before(MINUTE + 60 * 30)
    agg.add_line(line(cache="HIT", upstream=""))
    assert [x.requests for x in agg.changed()] == [1]


def test_tailer_reads_whole_lines_and_follows_rotation(tmp_path: Path) -> None:
    log = tmp_path / "access.json"
    tailer = LogTailer(log)
    assert tailer.read_lines() == []  # not there yet
    with log.open("a") as f:
        f.write(line(uri="/1") + "\n" + line(uri="/2")[:30])
    got = tailer.read_lines()
    assert [json.loads(x)["uri"] for x in got] == ["/1"]
    with log.open("a") as f:
        f.write(line(uri="/2")[30:] + "\n")
    assert [json.loads(x)["uri"] for x in tailer.read_lines()] == ["/2"]

    # Rotation by a real process standing in for the nginx master: it reopens on SIGUSR1.
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal,sys,time\n"
            "p=sys.argv[1]\n"
            "f=open(p,'a')\n"
            "def reopen(*_):\n"
            "    global f\n"
            "    f.close(); f=open(p,'a'); f.write(sys.argv[2]+'\\n'); f.flush()\n"
            "signal.signal(signal.SIGUSR1, reopen)\n"
            "f.write(sys.argv[3]+'\\n'); f.flush()\n"
            "print('ready', flush=True)\n"
            "time.sleep(30)\n",
            str(log),
            line(uri="/after"),
            line(uri="/before"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "ready"
        pid_file = tmp_path / "nginx.pid"
        pid_file.write_text(f"{writer.pid}\n")
        assert not rotate(log, pid_file, max_bytes=1 << 20)  # small: left alone
        assert rotate(log, pid_file, max_bytes=10)
        assert (tmp_path / "access.json.1").exists()
        deadline = time.monotonic() + 5
        uris: list[str] = []
        while time.monotonic() < deadline and "/after" not in uris:
            uris += [json.loads(x)["uri"] for x in tailer.read_lines()]
            time.sleep(0.02)
        # The end of the old file first, then the new file from its start.
        assert uris == ["/before", "/after"]
    finally:
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
    tailer.close()


def test_tailer_can_start_at_the_end(tmp_path: Path) -> None:
    log = tmp_path / "access.json"
    log.write_text(line(uri="/old") + "\n")
    tailer = LogTailer(log, from_end=True)
    assert tailer.read_lines() == []
    with log.open("a") as f:
        f.write(line(uri="/new") + "\n")
    assert [json.loads(x)["uri"] for x in tailer.read_lines()] == ["/new"]
    log.write_text("")  # truncated in place
    with log.open("a") as f:
        f.write(line(uri="/t") + "\n")
    assert [json.loads(x)["uri"] for x in tailer.read_lines()] == ["/t"]


def test_tailer_reads_a_backlog_over_several_calls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from edgeplane.node.agent import analytics

    monkeypatch.setattr(analytics, "READ_CHUNK", 256)
    monkeypatch.setattr(analytics, "READ_LIMIT", 512)
    log = tmp_path / "access.json"
    log.write_text("".join(line(uri=f"/{i}") + "\n" for i in range(20)))
    tailer = LogTailer(log)
    first = tailer.read_lines()
    assert 0 < len(first) < 20
    rest: list[bytes] = []
    for _ in range(20):
        rest += tailer.read_lines()
    uris = [json.loads(x)["uri"] for x in first + rest]
    assert uris == [f"/{i}" for i in range(20)]


def _minute_of(agg: TrafficAggregator) -> MinuteTraffic:
    (m,) = agg.changed()
    return m


def test_request_time_histogram_counts_every_line() -> None:
    agg = TrafficAggregator()
    for raw in [
        line(request_time="0.0005"),  # (0, 1]
        line(request_time="0.002", cache="HIT", upstream=""),  # exactly a bound: (1, 2]
        line(request_time="0.008", cache="HIT", upstream=""),  # (7, 10]
        line(request_time="0.25", upstream="0.200"),  # (200, 300]
        line(request_time="40.0", upstream="39.000"),  # above the last bound
        line(request_time='"1.5"'),  # a time as text still counts: (1000, 1500]
        line(request_time='"-"'),  # not a time: the request counts, the histogram not
        line(request_time="-1"),
    ]:
        agg.add_line(raw)
    m = _minute_of(agg)
    assert m.requests == 8
    assert len(m.request_ms) == len(UPSTREAM_MS_BUCKETS) + 1
    expected = [0] * (len(UPSTREAM_MS_BUCKETS) + 1)
    for ms in (0.5, 2.0, 8.0, 250.0, 40_000.0, 1500.0):
        expected[bucket_index(ms)] += 1
    assert m.request_ms == expected
    assert m.request_ms[0] == 1 and m.request_ms[1] == 1 and m.request_ms[-1] == 1
    assert m.request_ms[UPSTREAM_MS_BUCKETS.index(1500)] == 1
    assert request_ms(0.004) == 4.0 and request_ms("0.25") == 250.0
    assert request_ms(None) is None and request_ms("nan") is None and request_ms(True) is None


def test_bundle_responses_count_as_static_and_as_hits() -> None:
    agg = TrafficAggregator()
    for raw in [
        line(source="bundle", cache="STATIC", upstream="", size=1000),
        line(source="bundle", cache="STATIC", upstream="", status=404, size=10),
        line(source="bundle", cache="", upstream=""),  # the source alone is enough
        line(cache="STATIC", upstream=""),  # and so is the cache status (no source field)
        line(source="", cache="HIT", upstream=""),
        line(source="", cache="MISS"),
        line(source="", cache="BYPASS"),
    ]:
        agg.add_line(raw)
    m = _minute_of(agg)
    assert m.requests == 7
    assert m.static == 4
    assert m.hits == 5  # the four static responses and the cache HIT
    assert m.misses == 1
    assert m.cache == {"STATIC": 3, "HIT": 1, "MISS": 1, "BYPASS": 1}
    assert m.statuses == {"2xx": 6, "4xx": 1}
    assert sum(m.upstream_ms) == 2  # only the MISS and the BYPASS reached the origin
    assert sum(m.request_ms) == 7


def test_countries_from_a_locate_function_cached_per_address() -> None:
    table = {"198.51.100.1": "DE", "198.51.100.2": "fr", "203.0.113.9": None}
    calls: list[str] = []

    def locate(address: str) -> str | None:
        calls.append(address)
        if address == "bad":
            raise ValueError("not an IP address")
        if address == "weird":
            return "Germany"  # not a code: unknown
        return table.get(address)

    agg = TrafficAggregator(locate)
    addresses = ["198.51.100.1"] * 3 + ["198.51.100.2"] * 2 + ["203.0.113.9", "bad", "weird"]
    for addr in addresses:
        agg.add_line(line(addr=addr))
    agg.add_line(line(addr="198.51.100.1", t=MINUTE + 61))  # the next minute, same address
    agg.add_line(line(site="", addr="198.51.100.9"))  # not counted: not looked up
    first, second = agg.changed()
    assert first.countries == {"DE": 3, "FR": 2, "ZZ": 3}
    assert sum(first.countries.values()) == first.requests == 8
    assert second.countries == {"DE": 1}
    # One lookup per address, failures included.
    assert sorted(calls) == sorted(set(addresses))

    # A line without an address is unknown, without a lookup.
    calls.clear()
    agg.add({"site": "p1", "host": "s1.test", "msec": MINUTE + 2, "status": 200})
    assert _minute_of(agg).countries == {"DE": 3, "FR": 2, "ZZ": 4}
    assert calls == []


def test_the_country_cache_is_bounded_least_recently_used_first() -> None:
    calls: list[str] = []

    def locate(address: str) -> str | None:
        calls.append(address)
        return "US"

    agg = TrafficAggregator(locate, country_cache_size=2)
    for addr in ["192.0.2.1", "192.0.2.2", "192.0.2.1", "192.0.2.3", "192.0.2.1", "192.0.2.2"]:
        agg.add_line(line(addr=addr))
    # .1 .2 looked up; .1 cached (and used last); .3 pushes out .2; .1 still cached; .2 again.
    assert calls == ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.2"]
    assert _minute_of(agg).countries == {"US": 6}
    assert COUNTRY_CACHE_SIZE == 65536
    assert TrafficAggregator(locate)._country_cache_size == COUNTRY_CACHE_SIZE


def test_country_locator_on_the_packaged_database_or_none(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    locate = country_locator(None)
    assert locate is not None
    assert locate("81.2.69.160") == "GB"  # in MaxMind's test ranges and GeoLite2
    assert locate("10.0.0.1") is None  # not public
    agg = TrafficAggregator(locate)
    agg.add_line(line(addr="81.2.69.160"))
    agg.add_line(line(addr="10.0.0.1"))
    assert _minute_of(agg).countries == {"GB": 1, "ZZ": 1}

    with caplog.at_level(logging.WARNING):
        assert country_locator(tmp_path / "missing.mmdb") is None
    assert [r.getMessage() for r in caplog.records if "count no countries" in r.getMessage()]


def _new_line(second: int, cache: str = "HIT", request_time: str = "0.000") -> bytes:
    """The shape of the current edge_json format: time to the second, no uri / method."""
    t = datetime.fromtimestamp(MINUTE + second, UTC).isoformat()
    return (
        f'{{"time":"{t}","host":"s1.test","site":"p1","status":200,"bytes_sent":1400,'
        f'"request_time":{request_time},"upstream_response_time":"","cache":"{cache}",'
        f'"source":"","remote_addr":"127.0.0.1"}}'
    ).encode()


def test_equal_lines_are_parsed_once_and_counted_each() -> None:
    lines = [_new_line(1)] * 500 + [_new_line(1, request_time="0.002")] * 3
    lines += [_new_line(61, cache="MISS")] * 2 + [line().encode()]  # next minute; older format
    agg = TrafficAggregator()
    agg.add_lines(lines)
    first, second = sorted(agg.changed(), key=lambda m: m.minute)
    assert first.minute == datetime.fromtimestamp(MINUTE, UTC)
    assert first.requests == 504 and first.hits == 503 and first.misses == 1
    assert first.bytes_out == 503 * 1400 + 100
    assert first.cache == {"HIT": 503, "MISS": 1}
    assert sum(first.request_ms) == 504 and first.statuses == {"2xx": 504}
    assert second.requests == 2 and second.misses == 2
    assert agg.skipped == 0


def test_the_edges_own_refusals_are_counted_apart() -> None:
    agg = TrafficAggregator()
    agg.add_line(line(status=429, upstream="", cache=""), 3)  # a rate limit
    agg.add_line(line(status=403, upstream="", cache=""), 2)  # an IP list
    agg.add_line(line(status=403, upstream="0.002"))  # the origin's own 403: not the edge's
    agg.add_line(line(status=429, upstream="", cache="STATIC", source="bundle"))  # a bundle's
    [minute] = agg.changed()
    assert minute.blocked == {"rate_limit": 3, "denied": 2}
    assert minute.statuses["4xx"] == 7


def _pool(pid: str, *backends: tuple[str, str, int]) -> PoolSpec:
    return PoolSpec(
        id=pid,
        algorithm="round_robin",
        backends=tuple(BackendSpec(key=k, host=h, port=p) for k, h, p in backends),
    )


def test_answering_address_is_the_last_try() -> None:
    assert answering_address("10.0.0.1:80") == "10.0.0.1:80"
    assert answering_address("10.0.0.1:80, 10.0.0.2:80") == "10.0.0.2:80"  # retried
    assert answering_address("10.0.0.1:80 : [::1]:81") == "[::1]:81"  # internal redirect
    assert answering_address("") == answering_address("-") == ""


def test_backend_map_per_site_with_ipv6_and_resolved_names() -> None:
    pools = [
        _pool("lb.p1.web", ("10.0.0.1:80", "10.0.0.1", 80), ("app", "[2001:db8::1]", 8080)),
        _pool("lb.p2.api", ("api.internal:9000", "api.internal", 9000)),
    ]
    sites = [
        SiteSpec(id="p1", domains=("a.test",), pool="lb.p1.web"),
        SiteSpec(id="p2", domains=("b.test",), pool="lb.p2.api"),
        SiteSpec(id="p3", domains=("c.test",), pool=None),
    ]
    mapped = backend_map(sites, pools, lambda name: ["192.0.2.7", "2001:db8::9"])
    assert mapped == {
        "p1": {"10.0.0.1:80": "10.0.0.1:80", "[2001:db8::1]:8080": "app"},
        "p2": {
            "api.internal:9000": "api.internal:9000",
            "192.0.2.7:9000": "api.internal:9000",
            "[2001:db8::9]:9000": "api.internal:9000",
        },
    }


def test_requests_are_counted_per_backend_that_answered() -> None:
    agg = TrafficAggregator()
    agg.set_backends(
        backend_map(
            [SiteSpec(id="p1", domains=("s1.test",), pool="lb.p1.web")],
            [_pool("lb.p1.web", ("a", "10.0.0.1", 80), ("b", "10.0.0.2", 80))],
        )
    )

    def with_upstream(address: str, **kw: Any) -> str:
        doc = json.loads(line(**kw))
        doc["upstream"] = address
        return json.dumps(doc)

    for address in ["10.0.0.1:80"] * 3 + ["10.0.0.2:80"] * 2:
        agg.add_line(with_upstream(address))
    agg.add_line(with_upstream("10.0.0.1:80, 10.0.0.2:80"))  # retried: b answered
    agg.add_line(with_upstream("", cache="HIT", upstream=""))  # a hit: no backend
    agg.add_line(with_upstream("10.9.9.9:80"))  # no backend of the site's pool
    agg.add_line(with_upstream("10.0.0.1:80", site="p2"))  # another site: its pool unknown
    minutes = {m.site: m for m in agg.changed()}
    assert minutes["p1"].requests == 8
    assert minutes["p1"].backends == {"a": 3, "b": 3}
    assert minutes["p2"].backends == {}
