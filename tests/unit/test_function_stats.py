"""Edge functions on the node: invocations per minute from the access log (errors by outcome,
a missing outcome counted as unavailable, the duration histogram, Prometheus counters), the
console log tailed across rotation and truncation, bounded per function, shipped with restore
and the 404 pause."""

from __future__ import annotations

import asyncio
import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest

from edgeplane.node.agent.analytics import LogTailer, TrafficAggregator, bucket_index
from edgeplane.node.agent.client import Rejected, Unreachable
from edgeplane.node.agent.function_stats import (
    PAUSE_S,
    FunctionAggregator,
    FunctionConsole,
    console_log_path,
    outcome_of,
    reduce,
)
from edgeplane.node.agent.metrics import AgentMetrics
from edgeplane.protocol.messages import (
    UPSTREAM_MS_BUCKETS,
    FunctionLogReport,
    FunctionTrafficReport,
)

MINUTE = datetime(2026, 12, 6, 1, 2, tzinfo=UTC)


def access(
    *,
    fn: str | None = "shop/hello",
    fo: str | None = "ok",
    status: int = 200,
    seconds: float = 0.012,
    second: int = 3,
    site: str = "shop",
    fv: str = "hello@3",
) -> bytes:
    """An access log line as nginx writes it (edge_json), with the function keys when set."""
    doc: dict[str, Any] = {
        "time": datetime.fromtimestamp(MINUTE.timestamp() + second, UTC).isoformat(),
        "host": "shop.test",
        "site": site,
        "status": status,
        "bytes_sent": 100,
        "request_time": seconds,
        "upstream_response_time": "0.010",
        "cache": "",
        "source": "function",
        "remote_addr": "10.0.0.1",
        "method": "GET",
        "uri": "/api/x",
        "ua": "curl",
    }
    if fn is not None:
        doc["fn"] = fn
        doc["fv"] = fv
    if fo is not None:
        doc["fo"] = fo
    return json.dumps(doc, separators=(",", ":")).encode()


def console(msg: str = "hi", *, fn: str = "shop/hello", level: str = "log", v: Any = 3,
            rid: Any = "r-1", t: str = "2026-12-06T01:02:03.456Z") -> bytes:  # fmt: skip
    return json.dumps({"t": t, "fn": fn, "v": v, "level": level, "msg": msg, "rid": rid}).encode()


def test_invocations_are_counted_per_function_and_minute_with_errors_by_outcome() -> None:
    functions = FunctionAggregator()
    traffic = TrafficAggregator(functions=functions)
    lines = [
        *[access(seconds=0.004)] * 5,  # equal lines: parsed once, counted five times
        access(fo="exception", status=500, seconds=0.020),
        access(fo="timeout", status=503, seconds=5.0),
        access(fo="memory", status=503),
        access(fo="", status=502),  # the runtime did not answer
        access(fo=None, status=504),  # no outcome logged at all
        access(fo="weird", status=503),  # unknown: the runtime did not say ok
        access(fo="blocked", status=403),  # refused by the edge first: not an invocation
        access(fn=None),  # not a function's request
        access(fn="", fo=""),  # nor this (nginx logs "fn":"" when no function matched)
        access(fn="shop/other", second=59),
        access(fn="shop/hello", second=61),  # the next minute
        access(fn="Not A Key"),  # refused, counted as skipped
    ]
    traffic.add_lines(lines)
    minutes = {(m.function, m.minute): m for m in functions.changed()}
    assert set(minutes) == {
        ("shop/hello", MINUTE),
        ("shop/other", MINUTE),
        ("shop/hello", MINUTE.replace(minute=3)),
    }
    m = minutes[("shop/hello", MINUTE)]
    assert m.site == "shop" and m.invocations == 11
    assert m.errors == {"exception": 1, "timeout": 1, "memory": 1, "unavailable": 3}
    assert m.statuses == {"2xx": 5, "5xx": 6}
    assert len(m.duration_ms) == len(UPSTREAM_MS_BUCKETS) + 1 and sum(m.duration_ms) == 11
    assert m.duration_ms[bucket_index(4.0)] == 5
    assert m.duration_ms[bucket_index(5000.0)] == 1
    assert functions.skipped == 1 and functions.blocked == 1
    # The traffic counts every line as before, functions' included.
    assert sum(t.requests for t in traffic.changed()) == len(lines)
    # Nothing changed since: nothing to send; a minute that changes is sent whole again.
    assert functions.changed() == []
    functions.add("shop", {"fn": "shop/hello", "fo": "ok", "request_time": 0.001},
                  MINUTE.timestamp() + 5, 200)  # fmt: skip
    again = functions.changed()
    assert [(x.function, x.invocations) for x in again] == [("shop/hello", 12)]
    # What goes on the wire is valid for the control plane.
    report = FunctionTrafficReport(minutes=list(minutes.values()))
    assert FunctionTrafficReport.model_validate_json(report.model_dump_json()) == report
    functions.forget_before(MINUTE.timestamp() + 3600)
    assert functions.changed() == [] and not functions._minutes


def test_outcomes() -> None:
    assert [outcome_of(v) for v in ("ok", "exception", "timeout", "memory", "unavailable")] == [
        "ok", "exception", "timeout", "memory", "unavailable",
    ]  # fmt: skip
    assert [outcome_of(v) for v in ("", None, "OK", 3)] == ["unavailable"] * 4


def test_the_node_exports_invocations_and_durations_per_function() -> None:
    metrics = AgentMetrics()
    functions = FunctionAggregator(metrics.functions)
    traffic = TrafficAggregator(totals=metrics.totals, functions=functions)
    traffic.add_lines([access(seconds=0.004)] * 3 + [access(fo="timeout", seconds=5.0)])
    text = generate_latest(metrics.registry).decode()
    assert (
        'edgeplane_edge_function_invocations_total{function="hello",outcome="ok",site="shop"} 3.0'
        in text
    )
    assert (
        'edgeplane_edge_function_invocations_total{function="hello",outcome="timeout",'
        'site="shop"} 1.0' in text
    )
    assert (
        'edgeplane_edge_function_duration_seconds_bucket{function="hello",le="0.005",'
        'site="shop"} 3.0' in text
    )
    assert (
        'edgeplane_edge_function_duration_seconds_count{function="hello",site="shop"} 4.0' in text
    )
    assert 'edgeplane_edge_function_duration_seconds_sum{function="hello",site="shop"} 5.012' in (
        text
    )


def test_a_console_line_is_reduced() -> None:
    line = reduce(console("x = 1\n  at f (fn.js:3)\x07", level="error", rid="abc"))
    assert line is not None
    assert (line.function, line.version, line.level, line.request_id) == (
        "shop/hello", 3, "error", "abc",
    )  # fmt: skip
    assert line.message == "x = 1\n  at f (fn.js:3)%07"  # newlines kept, other controls escaped
    assert line.at == datetime(2026, 12, 6, 1, 2, 3, 456000, tzinfo=UTC)
    # The runtime's own lines: no request id; an unknown level is a log line.
    odd = reduce(console("3 console lines dropped", rid=None, v=None, level="trace"))
    assert odd is not None and (odd.request_id, odd.version, odd.level) == (None, None, "log")
    long = reduce(console("y" * 5000))
    assert long is not None and len(long.message) == 2048
    for bad in (b"not json", b"[1]", console(fn="nope"), console(t="yesterday")):
        assert reduce(bad) is None


def test_the_console_keeps_the_newest_lines_per_function_and_counts_the_rest() -> None:
    kept = FunctionConsole(per_function=3, total=5)
    kept.add_lines([console(f"a{i}") for i in range(5)] + [b"garbage"])
    assert len(kept) == 3 and kept.dropped == 2 and kept.skipped == 1
    kept.add_lines([console(f"b{i}", fn="shop/b") for i in range(3)])
    # The total bound: the quietest function (a) loses its oldest lines first.
    assert len(kept) == 5 and kept.dropped == 3
    report = kept.take()
    assert report is not None
    assert [x.message for x in report.lines] == ["a3", "a4", "b0", "b1", "b2"]
    assert report.dropped == 3 and len(kept) == 0 and kept.take() is None
    # A report not sent goes back as older than what came since, within the bounds.
    kept.add_lines([console("a5"), console("a6")])
    kept.restore(report)
    again = kept.take()
    assert again is not None
    # b, quiet since, comes first; each function keeps its newest lines that fit
    assert [x.message for x in again.lines] == ["b1", "b2", "a4", "a5", "a6"]
    assert again.dropped == 3 + 2  # a3 and b0 did not fit


def test_the_console_log_is_followed_across_rotation_and_truncation(tmp_path: Path) -> None:
    path = console_log_path(tmp_path / "access.json")
    assert path == tmp_path / "functions.json"
    path.write_bytes(console("before the agent") + b"\n")
    tailer = LogTailer(path, from_end=True)  # what came before was sent by the previous agent
    kept = FunctionConsole()
    assert kept.read(tailer) == 0
    two = console("two")
    with path.open("ab") as f:
        f.write(console("one") + b"\n" + two[:10])  # a line half written
    kept.read(tailer)
    assert len(kept) == 1
    with path.open("ab") as f:
        f.write(two[10:] + b"\n")  # completed
    kept.read(tailer)
    # Renamed (rotated) with a line written to the old file, then the runtime reopens.
    with path.open("ab") as f:
        f.write(console("three") + b"\n")
    os.replace(path, path.with_name("functions.json.1"))
    path.write_bytes(console("four") + b"\n")
    kept.read(tailer)
    # Truncated in place (a file the tailer reads from its start again).
    with path.open("ab") as f:
        f.write(console("4.5") + b"\n")
    kept.read(tailer)
    path.write_bytes(b"")
    kept.read(tailer)
    path.write_bytes(console("five") + b"\n")
    kept.read(tailer)
    report = kept.take()
    assert report is not None
    assert [x.message for x in report.lines] == [
        "one", "two", "three", "four", "4.5", "five",
    ]  # fmt: skip
    tailer.close()


class FakeControlPlane:
    def __init__(self) -> None:
        self.traffic: list[FunctionTrafficReport] = []
        self.logs: list[FunctionLogReport] = []
        self.fail: Exception | None = None

    async def report_function_traffic(self, node_id: str, body: FunctionTrafficReport) -> None:
        if self.fail is not None:
            raise self.fail
        self.traffic.append(FunctionTrafficReport.model_validate_json(body.model_dump_json()))

    async def report_function_logs(self, node_id: str, body: FunctionLogReport) -> None:
        if self.fail is not None:
            raise self.fail
        self.logs.append(FunctionLogReport.model_validate_json(body.model_dump_json()))


def test_shipping_restores_and_pauses_after_a_404(caplog: pytest.LogCaptureFixture) -> None:
    now = [1000.0]
    functions = FunctionAggregator(clock=lambda: now[0])
    kept = FunctionConsole(clock=lambda: now[0])
    cp = FakeControlPlane()

    def ship() -> tuple[int, int]:
        async def both() -> tuple[int, int]:
            return await functions.ship(cp, "n"), await kept.ship(cp, "n")

        return asyncio.run(both())

    def invoke() -> None:
        functions.add("shop", {"fn": "shop/hello", "fo": "ok", "request_time": 0.01},
                      MINUTE.timestamp(), 200)  # fmt: skip

    assert ship() == (0, 0)
    invoke()
    kept.add_lines([console("1")])
    cp.fail = Unreachable("down")
    assert ship() == (0, 0) and len(kept) == 1  # kept for the next round
    cp.fail = None
    assert ship() == (1, 1)
    assert cp.traffic[-1].minutes[0].invocations == 1 and cp.logs[-1].lines[0].message == "1"
    # Refused: dropped.
    invoke()
    kept.add_lines([console("2")])
    cp.fail = Rejected(422, "bad")
    assert ship() == (0, 0) and len(kept) == 0 and functions.changed() == []
    # An older control plane: 404, nothing kept or sent for PAUSE_S, logged once (debug).
    caplog.set_level(logging.DEBUG, logger="edgeplane.node.agent.function_stats")
    cp.fail = Rejected(404, "Not Found")
    for _ in range(3):
        invoke()
        kept.add_lines([console("3")])
        assert ship() == (0, 0)
        now[0] += 1
    assert len(kept) == 0
    notes = [r for r in caplog.records if "does not take" in r.message]
    assert len(notes) == 2 and {r.levelno for r in notes} == {logging.DEBUG}
    now[0] += PAUSE_S
    cp.fail = None
    invoke()
    kept.add_lines([console("4")])
    assert ship() == (1, 1) and cp.logs[-1].lines[0].message == "4"
    assert cp.traffic[-1].minutes[0].invocations == 6
