"""Load balancing through the rendered nginx: algorithms, failover, backups, rejected configs
(real nginx, real origin processes)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
from nginx_edge import Edge, backend, edge_config, pool, running_edge
from origins import OriginSet, origin_set

from edgeplane.node.nginx.local import LocalHealth
from edgeplane.protocol.config import BackendSpec, EdgeConfig, PoolSpec, SiteSpec

pytestmark = pytest.mark.integration
HOST = "lb.test"


@pytest.fixture
def origin_factory() -> Iterator[OriginSet]:
    with origin_set() as origins:
        yield origins


@pytest.fixture(scope="module")
def edge() -> Iterator[Edge]:
    with running_edge(https=False) as e:
        yield e


def config_for(p: PoolSpec) -> EdgeConfig:
    return edge_config([SiteSpec(id="p1", domains=(HOST,), pool=p.id)], [p])


def spread(edge: Edge, n: int, client: httpx.Client | None = None) -> Counter[str]:
    c = client or edge.client()
    return Counter(edge.get(HOST, "/", client=c).headers["x-origin"] for _ in range(n))


def test_round_robin_even(edge: Edge, origin_factory: OriginSet) -> None:
    a, b = origin_factory.start("a"), origin_factory.start("b")
    edge.apply(config_for(pool("lb.p1.rr", backend(a), backend(b))))
    got = spread(edge, 100)
    assert abs(got["a"] - 50) <= 5 and got["a"] + got["b"] == 100, got


@pytest.mark.parametrize("algorithm", ["weighted", "round_robin"])
def test_weights_in_proportion(edge: Edge, origin_factory: OriginSet, algorithm: str) -> None:
    a, b = origin_factory.start("a"), origin_factory.start("b")
    p = pool("lb.p1.w", backend(a, weight=3), backend(b), algorithm=algorithm)
    edge.apply(config_for(p))
    got = spread(edge, 100)
    assert 67 <= got["a"] <= 83, got


def test_ip_hash_sticky_per_client(edge: Edge, origin_factory: OriginSet) -> None:
    a, b = origin_factory.start("a"), origin_factory.start("b")
    edge.apply(config_for(pool("lb.p1.ih", backend(a), backend(b), algorithm="ip_hash")))
    chosen = {}
    for n in range(1, 13):
        got = spread(edge, 5, edge.client(source=f"127.0.{n}.1"))
        assert len(got) == 1, (n, got)  # sticky
        chosen[n] = next(iter(got))
    assert set(chosen.values()) == {"a", "b"}, chosen


def _concurrent(edge: Edge, threads: int, per_thread: int) -> tuple[Counter[str], list[str]]:
    seen: Counter[str] = Counter()
    errors: list[str] = []
    lock = threading.Lock()

    def run() -> None:
        c = edge.client()
        for _ in range(per_thread):
            try:
                r = edge.get(HOST, "/", client=c)
                with lock:
                    if r.status_code == 200:
                        seen[r.headers["x-origin"]] += 1
                    else:
                        errors.append(str(r.status_code))
            except httpx.HTTPError as exc:
                with lock:
                    errors.append(repr(exc))

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return seen, errors


@pytest.mark.parametrize("algorithm", ["least_conn", "dynamic"])
def test_least_conn_avoids_busy_backend(
    edge: Edge, origin_factory: OriginSet, algorithm: str
) -> None:
    slow, fast = origin_factory.start("slow", delay=0.2), origin_factory.start("fast")
    edge.apply(config_for(pool("lb.p1.lc", backend(slow), backend(fast), algorithm=algorithm)))
    seen, errors = _concurrent(edge, 10, 15)
    assert not errors
    assert seen["slow"] < 0.25 * sum(seen.values()), seen


def test_dynamic_uses_measured_weights(edge: Edge, origin_factory: OriginSet) -> None:
    a, b = origin_factory.start("a"), origin_factory.start("b")
    p = pool("lb.p1.dyn", backend(a), backend(b), algorithm="dynamic")
    edge.apply(config_for(p), LocalHealth(weights={(p.id, "a"): 9, (p.id, "b"): 1}))
    got = spread(edge, 100)  # one client at a time: least_conn ties broken by weight
    assert got["a"] >= 80, got


def test_sigkill_during_traffic_no_failed_get(edge: Edge, origin_factory: OriginSet) -> None:
    a, b = origin_factory.start("a"), origin_factory.start("b")
    edge.apply(config_for(pool("lb.p1.kill", backend(a), backend(b), connect_timeout_s=1)))
    result: dict[str, object] = {}

    def load() -> None:
        result["seen"], result["errors"] = _concurrent(edge, 4, 150)

    t = threading.Thread(target=load)
    t.start()
    deadline = time.monotonic() + 5
    while b.hits() < 50 and time.monotonic() < deadline:
        time.sleep(0.01)
    served_by_b = b.hits()
    b.kill()
    t.join()
    assert served_by_b >= 50, "b was killed before it had served traffic"
    assert result["errors"] == []
    seen = result["seen"]
    assert isinstance(seen, Counter) and sum(seen.values()) == 600, seen
    # b counted a request whose answer the kill cut (at most one per client): nginx sent it
    # again to a, so the client saw a
    assert seen["a"] > 300 and seen["b"] >= served_by_b - 4, seen


def test_local_health_down_takes_backend_out(edge: Edge, origin_factory: OriginSet) -> None:
    a, b = origin_factory.start("a"), origin_factory.start("b")
    p = pool("lb.p1.down", backend(a), backend(b))
    edge.apply(config_for(p), LocalHealth(down=frozenset({(p.id, "b")})))
    assert spread(edge, 20) == Counter({"a": 20})
    edge.apply(config_for(p))  # recovery
    assert spread(edge, 20)["b"] >= 8
    drained = pool("lb.p1.down", backend(a), backend(b, state="draining"))
    edge.apply(config_for(drained))
    assert spread(edge, 20) == Counter({"a": 20})


@pytest.mark.parametrize("algorithm", ["round_robin", "least_conn"])
def test_native_backup_only_when_primaries_die(
    edge: Edge, origin_factory: OriginSet, algorithm: str
) -> None:
    a, b, c = (origin_factory.start(n) for n in ("a", "b", "c"))
    p = pool("lb.p1.bk", backend(a), backend(b), backend(c, backup=True), algorithm=algorithm)
    edge.apply(config_for(p))
    assert spread(edge, 30)["c"] == 0
    a.kill()
    b.kill()
    got = spread(edge, 30)
    assert got == Counter({"c": 30}), got


def test_ip_hash_backup_by_local_health(edge: Edge, origin_factory: OriginSet) -> None:
    a, b, c = (origin_factory.start(n) for n in ("a", "b", "c"))
    p = pool("lb.p1.ihb", backend(a), backend(b), backend(c, backup=True), algorithm="ip_hash")
    edge.apply(config_for(p))
    assert sum(spread(edge, 5, edge.client(source=f"127.0.{n}.1"))["c"] for n in range(1, 9)) == 0
    down = LocalHealth(down=frozenset({(p.id, "a"), (p.id, "b")}))
    edge.apply(config_for(p), down)
    assert spread(edge, 20) == Counter({"c": 20})


def test_pool_without_live_backend_answers_fast(edge: Edge, origin_factory: OriginSet) -> None:
    a = origin_factory.start("a")
    p = pool("lb.p1.none", backend(a, state="disabled"))
    edge.apply(config_for(p))
    started = time.monotonic()
    r = edge.get(HOST, "/")
    assert r.status_code == 502 and time.monotonic() - started < 1
    assert r.headers["x-served-by"] == "edge-1"


def test_site_without_origin_answers_502(edge: Edge) -> None:
    edge.apply(edge_config([SiteSpec(id="p9", domains=(HOST,), pool=None)], []))
    r = edge.get(HOST, "/")
    assert r.status_code == 502 and "no origin" in r.text


def test_rejected_config_never_reaches_nginx(edge: Edge, origin_factory: OriginSet) -> None:
    a = origin_factory.start("a")
    good = config_for(pool("lb.p1.good", backend(a)))
    before = edge.apply(good)
    broken_backend = BackendSpec.model_construct(
        key="bad",
        host="127.0.0.1",
        port=a.port,
        weight=0,
        scheme="http",
        backup=False,
        state="active",
    )
    bad = config_for(pool("lb.p1.good", broken_backend))
    result = edge.engine.apply(bad, LocalHealth())
    assert not result.ok and not result.changed
    assert result.error is not None and "weight=0" in result.error and "[emerg]" in result.error
    assert edge.engine.running_marker() == before.marker
    assert edge.get(HOST, "/").headers["x-origin"] == "a"
    failed = [p.name for p in (edge.local.prefix / "releases").iterdir()]
    assert f"failed-{result.marker}" in failed
