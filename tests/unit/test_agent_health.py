"""The agent's active health checks against real origin processes (sockets, not mocks)."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator

import pytest
from origins import Origin, OriginSet, origin_set

from edgeplane.node.agent.health import (
    HealthChecker,
    Prober,
    ProbeResult,
    Target,
    dynamic_weights,
    moved_enough,
    parse_expected,
)
from edgeplane.protocol.config import BackendSpec, HealthCheckSpec, PoolSpec


@pytest.fixture
def origins() -> Iterator[OriginSet]:
    with origin_set() as s:
        yield s


def backend(origin: Origin, **kw: object) -> BackendSpec:
    return BackendSpec(key=origin.address, host="127.0.0.1", port=origin.port, **kw)  # type: ignore[arg-type]


def check(**kw: object) -> HealthCheckSpec:
    base: dict[str, object] = {
        "path": "/health",
        "interval_s": 1.0,
        "timeout_s": 0.5,
        "healthy_threshold": 2,
        "unhealthy_threshold": 2,
    }
    base.update(kw)
    return HealthCheckSpec(**base)  # type: ignore[arg-type]


def target(origin: Origin, **kw: object) -> Target:
    return Target("lb.p.1", backend(origin), check(**kw), "round_robin")


def probe(t: Target) -> ProbeResult:
    async def run() -> ProbeResult:
        prober = Prober()
        try:
            return await prober.probe(t)
        finally:
            await prober.aclose()

    return asyncio.run(run())


def test_expected_status_parsing() -> None:
    assert parse_expected("200-399") == ((200, 399),)
    assert parse_expected("200") == ((200, 200),)
    assert parse_expected("200, 204-206") == ((200, 200), (204, 206))
    assert parse_expected("banana") == ((200, 399),)
    assert parse_expected("399-200") == ((200, 399),)


def test_probe_outcomes_against_real_sockets(origins: OriginSet) -> None:
    a = origins.start("a")
    ok = probe(target(a))
    assert ok.ok and ok.reason == "ok" and ok.latency_ms is not None and ok.latency_ms < 500

    a.set_health(500)
    bad = probe(target(a))
    assert not bad.ok and bad.reason == "status 500 (expected 200-399)"
    # The expected range decides: 500 is fine when it is what the check expects.
    assert probe(target(a, expected_status="500")).ok
    a.set_health(204)
    assert probe(target(a, expected_status="200")).reason == "status 204 (expected 200)"
    assert probe(target(a, expected_status="200,204")).ok

    # The Host header of the check is sent as configured.
    assert probe(target(a, expected_status="204", host="health.example")).ok

    # TCP checks only connect.
    a.set_health(500)
    assert probe(target(a, protocol="tcp")).ok

    a.stop()  # SIGSTOP: the kernel accepts the connection, nobody answers
    started = time.monotonic()
    hung = probe(target(a))
    elapsed = time.monotonic() - started
    assert not hung.ok and hung.reason == "timeout after 0.5s"
    assert 0.4 < elapsed < 1.5
    a.cont()

    a.kill()
    assert probe(target(a)).reason == "connect refused"
    assert probe(target(a, protocol="tcp")).reason == "connect refused"


def test_rise_and_fall_counters(origins: OriginSet) -> None:
    """A new backend is up after one good check, down after `fall` bad ones, up again after
    `rise` good ones; each change (but unknown -> up) calls on_change."""
    a = origins.start("a")

    async def run() -> list[str]:
        changes: list[str] = []
        checker = HealthChecker(on_change=lambda: changes.append("change"))
        t = target(a, healthy_threshold=3, unhealthy_threshold=2)
        pool = PoolSpec(id=t.pool, algorithm="round_robin", backends=(t.backend,),
                        health_check=t.check)
        checker.update([pool])
        # Drive the checks one by one (the background task is cancelled to keep control).
        await checker.close()
        checker._targets[t.key] = t  # the target the records apply to
        prober = Prober()
        states: list[str] = []

        async def step() -> None:
            checker.record(t, await prober.probe(t))
            status = checker.status(t.pool, t.backend.key)
            assert status is not None
            states.append(status.state)

        await step()  # unknown -> up (optimistic, no change for nginx)
        assert changes == []
        a.set_health(503)
        await step()  # 1 failure: still up
        await step()  # 2 failures: down
        status = checker.status(t.pool, t.backend.key)
        assert status is not None and status.reason == "status 503 (expected 200-399)"
        assert status.checked_at is not None and status.changed_at is not None
        assert checker.decision()[0] == frozenset({t.key})
        a.set_health(200)
        await step()
        await step()
        assert checker.decision()[0] == frozenset({t.key})  # 2 of 3 successes
        await step()
        assert checker.decision()[0] == frozenset()
        await prober.aclose()
        report = checker.report()
        assert [(b.pool, b.backend, b.state, b.reason) for b in report] == [
            (t.pool, t.backend.key, "up", "ok")
        ]
        assert len(changes) == 2
        return states

    assert asyncio.run(run()) == ["up", "up", "down", "down", "down", "up"]


def test_first_failed_check_marks_a_new_backend_down(origins: OriginSet) -> None:
    a = origins.start("a")
    a.set_health(500)

    async def run() -> None:
        changes: list[int] = []
        checker = HealthChecker(on_change=lambda: changes.append(1))
        t = target(a)
        checker._targets[t.key] = t
        from edgeplane.node.agent.health import BackendStatus

        checker._status[t.key] = BackendStatus(pool=t.pool, key=t.backend.key)
        prober = Prober()
        checker.record(t, await prober.probe(t))
        await prober.aclose()
        assert checker.decision()[0] == frozenset({t.key})
        assert changes == [1]

    asyncio.run(run())


def test_running_checker_follows_a_frozen_backend(origins: OriginSet) -> None:
    """With interval 1 s, fall 2: a SIGSTOPped backend is down within ~2 intervals + timeout,
    the other stays up, and after SIGCONT it comes back after `rise` checks."""
    a = origins.start("a")
    b = origins.start("b")
    hc = check(unhealthy_threshold=2, healthy_threshold=2)
    pool = PoolSpec(id="lb.p.1", algorithm="round_robin", backends=(backend(a), backend(b)),
                    health_check=hc)

    async def wait_for(cond: object, deadline_s: float) -> float:
        start = time.monotonic()
        while time.monotonic() - start < deadline_s:
            if cond():  # type: ignore[operator]
                return time.monotonic() - start
            await asyncio.sleep(0.05)
        raise AssertionError("condition not met in time")

    async def run() -> tuple[float, float]:
        changed = asyncio.Event()
        checker = HealthChecker(on_change=changed.set)
        checker.update([pool])
        try:
            await wait_for(lambda: all(s.state == "up" for s in checker.report()), 3)
            a.stop()
            down_after = await wait_for(
                lambda: checker.decision()[0] == frozenset({("lb.p.1", a.address)}), 5
            )
            assert changed.is_set()
            status = checker.status("lb.p.1", a.address)
            assert status is not None and status.reason == "timeout after 0.5s"
            other = checker.status("lb.p.1", b.address)
            assert other is not None and other.state == "up"
            a.cont()
            up_after = await wait_for(lambda: checker.decision()[0] == frozenset(), 5)
            # A backend removed from the snapshot is no longer checked nor reported.
            checker.update([pool.model_copy(update={"backends": (backend(b),)})])
            assert [s.backend for s in checker.report()] == [b.address]
            # Disabled backends are not checked; pools without a check neither.
            checker.update([
                pool.model_copy(update={"backends": (backend(b, state="disabled"),)}),
                PoolSpec(id="origin.p", algorithm="round_robin", backends=(backend(a),)),
            ])
            assert checker.report() == []
            return down_after, up_after
        finally:
            await checker.close()

    down_after, up_after = asyncio.run(run())
    # fall=2 at 1 s intervals with a 0.5 s timeout: at most ~2.5 s (plus scheduling).
    assert down_after < 3.5, down_after
    assert up_after < 3.5, up_after


def test_dynamic_weights_follow_latency_with_hysteresis() -> None:
    assert dynamic_weights({"a": 10.0, "b": 20.0, "c": 1000.0}) == {"a": 100, "b": 50, "c": 1}
    # Loopback jitter below the floor does not count.
    assert dynamic_weights({"a": 0.2, "b": 1.5}) == {"a": 100, "b": 100}
    assert moved_enough(None, 50)
    assert not moved_enough(50, 59) and moved_enough(50, 61) and moved_enough(50, 39)

    async def run() -> None:
        changes: list[int] = []
        checker = HealthChecker(on_change=lambda: changes.append(1))
        hc = check()
        fast = BackendSpec(key="fast", host="127.0.0.1", port=1)
        slow = BackendSpec(key="slow", host="127.0.0.1", port=2)
        tf = Target("lb.p.d", fast, hc, "dynamic")
        ts = Target("lb.p.d", slow, hc, "dynamic")
        from edgeplane.node.agent.health import BackendStatus

        for t in (tf, ts):
            checker._targets[t.key] = t
            checker._status[t.key] = BackendStatus(pool=t.pool, key=t.backend.key)
        checker.record(tf, ProbeResult(True, "ok", 10.0))
        checker.record(ts, ProbeResult(True, "ok", 40.0))
        assert checker.decision()[1] == {("lb.p.d", "fast"): 100, ("lb.p.d", "slow"): 25}
        n = len(changes)
        checker.record(ts, ProbeResult(True, "ok", 44.0))  # p50 42 -> 24: within 20 %
        assert checker.decision()[1][("lb.p.d", "slow")] == 25 and len(changes) == n
        for _ in range(5):
            checker.record(ts, ProbeResult(True, "ok", 100.0))  # p50 100 -> 10
        assert checker.decision()[1][("lb.p.d", "slow")] == 10 and len(changes) > n

    asyncio.run(run())


# wait_for_check ------------------------------------------------------------------------------


async def _until(cond: object, deadline_s: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < deadline_s:
        if cond():  # type: ignore[operator]
            return time.monotonic() - start
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in time")


def test_a_waiting_backend_is_out_until_a_check_passed_and_checked_at_once(
    origins: OriginSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Out of rotation from the snapshot on (before any check), checked at once, still out
    after failed checks (however many), in on the first passed one even with rise 3; from
    then on fall and rise as for any backend."""
    from processes import free_port

    _late_start(monkeypatch)

    a = origins.start("a")
    port = free_port()  # b: nothing listens there yet
    hc = check(healthy_threshold=3, unhealthy_threshold=2)
    b_spec = BackendSpec(key=f"127.0.0.1:{port}", host="127.0.0.1", port=port,
                         wait_for_check=True)  # fmt: skip
    pool = PoolSpec(id="lb.p.w", algorithm="round_robin", backends=(backend(a), b_spec),
                    health_check=hc)  # fmt: skip
    b_key = ("lb.p.w", b_spec.key)

    async def run() -> None:
        changes: list[int] = []
        checker = HealthChecker(on_change=lambda: changes.append(1))
        try:
            checker.update([pool])
            # Out before any check: the render that follows the snapshot has it down.
            assert checker.decision()[0] == frozenset({b_key})
            assert changes == [1]
            b_status = checker.status(*b_key)
            assert b_status is not None
            assert (b_status.state, b_status.reason) == ("down", "awaiting its first health check")
            assert {r.backend: r.state for r in checker.report()} == {
                a.address: "unknown", b_spec.key: "down"}  # fmt: skip
            # Checked at once, not at a random point of the first second.
            first = await _until(lambda: b_status.checked_at is not None, 2)
            assert first < 0.6, first  # not after the random start (0.9 s here)
            assert b_status.reason == "awaiting its first health check to pass: connect refused"
            assert b_status.state == "down" and checker.decision()[0] == frozenset({b_key})
            await asyncio.sleep(1.2)  # a second failed check changes nothing
            assert b_status.failures >= 2 and checker.decision()[0] == frozenset({b_key})
            n = len(changes)

            b = origins.start("b", port=port)  # listening now: in on its first pass
            up = await _until(lambda: checker.decision()[0] == frozenset(), 3)
            assert up < 1.5, up  # interval 1 s: one check, not rise (3)
            assert b_status.state == "up" and b_status.reason == "ok" and len(changes) > n
            # From now on it is a backend like any other: fall 2, rise 3.
            b.set_health(500)
            await _until(lambda: b_status.state == "down", 4)
            assert b_status.reason == "status 500 (expected 200-399)"
            b.set_health(200)
            back = await _until(lambda: b_status.state == "up", 5)
            assert back > 1.5, back  # three passed checks at 1 s, not one
        finally:
            await checker.close()

    asyncio.run(run())


def _late_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every random start of a first check at 0.9 s (of at most 1 s)."""
    monkeypatch.setattr(random, "uniform", lambda low, high: low + 0.9 * (high - low))


def test_waiting_backends_are_checked_at_once_the_others_at_a_random_start(
    origins: OriginSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Backends without the flag start at a random point of the first second (0.9 s here);
    waiting ones do not wait."""
    _late_start(monkeypatch)
    waiting = [origins.start(n) for n in "abc"]
    plain = origins.start("d")
    pool = PoolSpec(id="lb.p.many", algorithm="round_robin",
                    backends=(*(backend(o, wait_for_check=True) for o in waiting),
                              backend(plain)),
                    health_check=check())  # fmt: skip

    async def run() -> tuple[float, float]:
        checker = HealthChecker()
        try:
            start = time.monotonic()
            checker.update([pool])
            assert len(checker.decision()[0]) == 3
            await _until(lambda: checker.decision()[0] == frozenset(), 2)
            all_in = time.monotonic() - start
            status = checker.status("lb.p.many", plain.address)
            assert status is not None
            await _until(lambda: status.checked_at is not None, 2)
            return all_in, time.monotonic() - start
        finally:
            await checker.close()

    all_in, plain_checked = asyncio.run(run())
    assert all_in < 0.6, all_in
    assert plain_checked >= 0.9, plain_checked


def test_what_nginx_serves_in_rotation_stays_there(origins: OriginSet) -> None:
    """A restart of the agent (a new checker) or a new snapshot: a waiting backend that the
    release nginx runs serves in rotation starts unknown (in rotation, its first check
    decides) instead of down; one it does not serve waits. Turning the flag off before a
    check trusts the backend as any new one."""
    a, b = origins.start("a"), origins.start("b")
    a.set_health(500)
    pool = PoolSpec(id="lb.p.r", algorithm="round_robin",
                    backends=(backend(a, wait_for_check=True), backend(b, wait_for_check=True)),
                    health_check=check())  # fmt: skip
    asked: list[int] = []

    def served() -> frozenset[tuple[str, str]]:
        asked.append(1)
        return frozenset({("lb.p.r", a.address), ("lb.p.other", b.address)})

    async def run() -> None:
        changes: list[int] = []
        checker = HealthChecker(on_change=lambda: changes.append(1), in_rotation=served)
        try:
            checker.update([pool])
            assert asked == [1]  # once per update, not per backend
            a_status, b_status = checker.status("lb.p.r", a.address), checker.status(
                "lb.p.r", b.address)  # fmt: skip
            assert a_status is not None and b_status is not None
            assert (a_status.state, a_status.awaiting) == ("unknown", False)
            assert a_status.reason == "not checked yet (in rotation in the release nginx serves)"
            assert (b_status.state, b_status.awaiting) == ("down", True)
            assert checker.decision()[0] == frozenset({("lb.p.r", b.address)})
            # Its first check decides, as for any backend in rotation: a fails it, out at once.
            await _until(lambda: a_status.state == "down", 2)
            assert a_status.reason == "status 500 (expected 200-399)"
            await _until(lambda: b_status.state == "up", 2)
            assert checker.decision()[0] == frozenset({("lb.p.r", a.address)})
            # A snapshot that changes nothing for them reads nothing again.
            checker.update([pool])
            assert asked == [1]
        finally:
            await checker.close()

    asyncio.run(run())

    # The flag turned off before any check: trusted at once.
    async def off() -> None:
        checker = HealthChecker()
        try:
            checker._prober = _Never()  # no check completes
            checker.update([pool])
            assert len(checker.decision()[0]) == 2
            plain = pool.model_copy(update={"backends": (backend(a), backend(b))})
            checker.update([plain])
            assert checker.decision()[0] == frozenset()
            status = checker.status("lb.p.r", b.address)
            assert status is not None and (status.state, status.awaiting) == ("unknown", False)
        finally:
            await checker.close()

    asyncio.run(off())


class _Never(Prober):
    def __init__(self) -> None:
        super().__init__()

    async def probe(self, target: Target) -> ProbeResult:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")
