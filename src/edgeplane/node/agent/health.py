"""Active health checks, run by the agent of every edge node against every backend of every
pool that has a ``health_check`` in the snapshot.

Each backend is checked by its own asyncio task, so a slow or hung backend never delays the
checks of another. A check is an HTTP(S) GET of ``path`` (``Host`` = the check's ``host`` or the
backend's own) whose status must fall within ``expected_status`` ("200-399", "200" or a comma
separated list of both), within ``timeout_s``; or, for protocol ``tcp``, a TCP connect. Checks
start at a random point of the first interval (so that many backends do not fire together) and
then run every ``interval_s``.

States: a backend starts ``unknown``; the first check decides ``up`` or ``down`` at once (a new
backend is trusted, like nginx does, unless its first check fails). Afterwards it goes ``down``
after ``unhealthy_threshold`` consecutive failures (fall) and ``up`` again after
``healthy_threshold`` consecutive successes (rise). Each state keeps the reason of the last
check ("connect refused", "timeout after 2s", "status 500 (expected 200-399)"), its time and
its latency.

A backend with ``wait_for_check`` (HAProxy's ``init-state down``) is not trusted: it starts
``down``, "awaiting its first health check", is checked at once (not at a random point of the
first second), and goes ``up`` on its first passed check, however many failed before it (then
"awaiting its first health check to pass: <reason>"); from then on fall and rise apply as
above. Only backends new to this node start so: one that nginx serves in rotation in the
release it runs (``in_rotation``, read from the engine's current release: the agent restarted
or the snapshot changed) starts ``unknown`` like any other, so that an agent restart does not
take a healthy pool out of rotation for a check. Without a health check in its pool the flag
does nothing (the API refuses that combination).

Algorithm ``dynamic``: every up backend of the pool gets a weight
``clamp(round(100 * fastest_p50 / own_p50), 1, 100)`` where ``p50`` is the median latency of its
last ``LATENCY_WINDOW`` successful probes (floored at ``LATENCY_FLOOR_MS`` so that loopback
jitter does not count), and nginx balances by least connections weighted by it. A published
weight changes only when the new one differs from it by more than 20 %, which keeps reloads
rare.

Any change of the set of down backends or of the published weights calls ``on_change``; the
agent then renders the new state into nginx (a graceful reload) and reports it.

Backends of pools with TLS settings to their origins (private origins) are checked over TLS as
nginx speaks it to them, and their public-key pins compared: ``node.agent.origin_tls``. A
pinned backend is out of rotation until a check has seen a pinned key, and out at once when
one sees another key; a verifying pool (CA or pins) without a health check gets
``origin_tls.TLS_CHECK``, so that every node reports what it sees of the origins' certificates.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import statistics
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

import httpx

from edgeplane.node.agent.origin_tls import TLS_CHECK, CertSource, OriginTlsProber
from edgeplane.node.agent.tasks import cancel_all
from edgeplane.protocol.config import BackendSpec, HealthCheckSpec, PoolSpec
from edgeplane.protocol.messages import BackendState
from edgeplane.protocol.origin_tls import OriginTlsSpec

log = logging.getLogger(__name__)

LATENCY_WINDOW = 10
LATENCY_FLOOR_MS = 2.0
WEIGHT_HYSTERESIS = 0.2
DEFAULT_STATUS = ((200, 399),)
_RANGE = re.compile(r"^\s*(\d{3})\s*(?:-\s*(\d{3})\s*)?$")

Key = tuple[str, str]  # (pool id, backend key)
State = Literal["up", "down", "unknown"]
AWAITING = "awaiting its first health check"
IN_ROTATION = "not checked yet (in rotation in the release nginx serves)"


def parse_expected(expected: str) -> tuple[tuple[int, int], ...]:
    """``"200-399"`` -> ((200, 399),); ``"200,204"`` -> ((200, 200), (204, 204))."""
    ranges: list[tuple[int, int]] = []
    for part in expected.split(","):
        m = _RANGE.match(part)
        if not m:
            return DEFAULT_STATUS
        low = int(m.group(1))
        high = int(m.group(2) or low)
        if high < low:
            return DEFAULT_STATUS
        ranges.append((low, high))
    return tuple(ranges) or DEFAULT_STATUS


def _seconds(value: float) -> str:
    return f"{value:g}s"


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    reason: str
    latency_ms: float | None
    fatal: bool = False  # out at once, whatever the thresholds (a key that is not pinned)


@dataclass(frozen=True)
class Target:
    """One backend of one pool, as its checks need it."""

    pool: str
    backend: BackendSpec
    check: HealthCheckSpec
    algorithm: str
    tls: OriginTlsSpec | None = None  # the pool's TLS to its origins (https backends)

    @property
    def key(self) -> Key:
        return (self.pool, self.backend.key)

    @property
    def pinned(self) -> bool:
        return self.tls is not None and self.tls.pinned and self.backend.scheme == "https"

    @property
    def scheme(self) -> str:
        if self.check.protocol == "https" or self.backend.scheme == "https":
            return "https"
        return "http"

    @property
    def url(self) -> str:
        host = self.backend.host
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"{self.scheme}://{host}:{self.backend.port}{self.check.path}"


@dataclass
class BackendStatus:
    pool: str
    key: str
    state: State = "unknown"
    reason: str = "not checked yet"
    checked_at: datetime | None = None
    changed_at: datetime | None = None
    latency_ms: float | None = None
    successes: int = 0  # consecutive
    failures: int = 0  # consecutive
    awaiting: bool = False  # wait_for_check: out of rotation until a check passes
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))

    def as_report(self) -> BackendState:
        return BackendState(
            pool=self.pool,
            backend=self.key,
            state=self.state,
            reason=self.reason[:2000],
            checked_at=self.checked_at,
            changed_at=self.changed_at,
            latency_ms=None if self.latency_ms is None else round(self.latency_ms, 3),
        )


def _connect_reason(exc: BaseException) -> str:
    seen: BaseException | None = exc
    while seen is not None:  # httpx wraps the OSError (sometimes in an ExceptionGroup)
        if isinstance(seen, ConnectionRefusedError) or "refused" in str(seen).lower():
            return "connect refused"
        group = getattr(seen, "exceptions", None)
        if group and isinstance(group[0], BaseException):
            seen = group[0]
            continue
        seen = seen.__cause__ or seen.__context__
    return f"connect failed: {str(exc) or type(exc).__name__}"[:300]


class Prober:
    """Runs single checks; holds the HTTP clients (no keep-alive: every check connects)."""

    def __init__(self, certs: CertSource | None = None) -> None:
        self._origin_tls = OriginTlsProber(certs)
        limits = httpx.Limits(max_keepalive_connections=0)
        headers = {"User-Agent": "edgeplane-health-check", "Connection": "close"}
        self._http = httpx.AsyncClient(limits=limits, headers=headers, follow_redirects=False)
        # Backends commonly present certificates for names other than their address.
        self._https = httpx.AsyncClient(
            limits=limits, headers=headers, follow_redirects=False, verify=False
        )

    async def aclose(self) -> None:
        await self._http.aclose()
        await self._https.aclose()

    async def probe(self, target: Target) -> ProbeResult:
        check = target.check
        start = time.perf_counter()
        try:
            async with asyncio.timeout(check.timeout_s):
                fatal = False
                if target.tls is not None and target.backend.scheme == "https":
                    ranges = parse_expected(check.expected_status)
                    outcome = await self._origin_tls.probe(
                        target.backend,
                        check,
                        target.tls,
                        lambda status: any(low <= status <= high for low, high in ranges),
                    )
                    reason, fatal = outcome.reason, outcome.fatal
                elif check.protocol == "tcp":
                    reason = await self._tcp(target)
                else:
                    reason = await self._http_get(target)
        except TimeoutError:
            return ProbeResult(False, f"timeout after {_seconds(check.timeout_s)}", None)
        latency = (time.perf_counter() - start) * 1000
        if reason is None:
            return ProbeResult(True, "ok", latency)
        return ProbeResult(False, reason, latency, fatal)

    async def _tcp(self, target: Target) -> str | None:
        try:
            _, writer = await asyncio.open_connection(target.backend.host, target.backend.port)
        except OSError as exc:
            return _connect_reason(exc)
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return None

    async def _http_get(self, target: Target) -> str | None:
        client = self._https if target.scheme == "https" else self._http
        headers = {"Host": target.check.host} if target.check.host else None
        timeout = httpx.Timeout(target.check.timeout_s + 1)  # asyncio.timeout decides first
        try:
            response = await client.get(target.url, headers=headers, timeout=timeout)
        except httpx.ConnectError as exc:
            return _connect_reason(exc)
        except httpx.TimeoutException:
            return f"timeout after {_seconds(target.check.timeout_s)}"
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"[:300]
        ranges = parse_expected(target.check.expected_status)
        if any(low <= response.status_code <= high for low, high in ranges):
            return None
        return f"status {response.status_code} (expected {target.check.expected_status})"


def dynamic_weights(p50s: dict[str, float]) -> dict[str, int]:
    """Weights from median latencies: the fastest gets 100, one twice as slow 50, at least 1."""
    if not p50s:
        return {}
    floored = {k: max(LATENCY_FLOOR_MS, v) for k, v in p50s.items()}
    fastest = min(floored.values())
    return {k: max(1, min(100, round(100 * fastest / v))) for k, v in floored.items()}


def moved_enough(old: int | None, new: int) -> bool:
    return old is None or abs(new - old) > WEIGHT_HYSTERESIS * old


class HealthChecker:
    """Checks every target of the current snapshot; ``update`` follows snapshot changes."""

    def __init__(
        self,
        on_change: Callable[[], None] | None = None,
        *,
        prober: Prober | None = None,
        certs: CertSource | None = None,
        in_rotation: Callable[[], frozenset[Key]] | None = None,
    ) -> None:
        """``certs``: the client certificates of private origins, whole, by id.
        ``in_rotation``: the backends nginx serves in rotation now (the engine's current
        release), asked when a ``wait_for_check`` backend is new to this checker."""
        self._on_change = on_change
        self._in_rotation = in_rotation
        self._prober = prober or Prober(certs)
        self._targets: dict[Key, Target] = {}
        self._tasks: dict[Key, asyncio.Task[None]] = {}
        self._status: dict[Key, BackendStatus] = {}
        self._weights: dict[Key, int] = {}
        self.version = 0  # bumped on every change of ``decision()``
        self.reported_changes = asyncio.Event()  # set on every state change, for the reporter

    # What nginx needs ------------------------------------------------------------------------

    def decision(self) -> tuple[frozenset[Key], dict[Key, int]]:
        """(backends out of rotation, dynamic weights). A pinned backend is out until a check
        has seen its pinned key (fail closed)."""
        down = frozenset(
            k
            for k, s in self._status.items()
            if s.state == "down" or (s.state == "unknown" and self._targets[k].pinned)
        )
        return down, dict(self._weights)

    def report(self) -> list[BackendState]:
        return [self._status[k].as_report() for k in sorted(self._status)]

    def status(self, pool: str, backend: str) -> BackendStatus | None:
        return self._status.get((pool, backend))

    # Following the snapshot ------------------------------------------------------------------

    def update(self, pools: Iterable[PoolSpec]) -> None:
        """Check exactly the backends of ``pools`` that have a health check (and are not
        disabled); keeps the state of backends that stay."""
        wanted: dict[Key, Target] = {}
        for pool in pools:
            check = pool.health_check
            if check is None and pool.tls is not None and pool.tls.verify != "none":
                check = TLS_CHECK  # certificates are checked even without a health check
            if check is None:
                continue
            for backend in pool.backends:
                if backend.state == "disabled":
                    continue
                target = Target(pool.id, backend, check, pool.algorithm, pool.tls)
                wanted[target.key] = target
        changed = False
        served: frozenset[Key] | None = None  # read once, when needed
        for key in list(self._targets):
            if key not in wanted:
                self._tasks.pop(key).cancel()
                del self._targets[key]
                status = self._status.pop(key)
                self._weights.pop(key, None)
                changed = changed or status.state == "down"
        for key, target in wanted.items():
            if self._targets.get(key) == target:
                continue
            old = self._tasks.pop(key, None)
            if old is not None:
                old.cancel()
            was = self._targets.get(key)
            if target.pinned and (was is None or not was.pinned):
                # out of rotation until checked: a new pin restarts from unknown
                self._status[key] = BackendStatus(pool=key[0], key=key[1])
                changed = True
            held = self._status.get(key)
            if held is None and target.backend.wait_for_check:
                if served is None:
                    served = self._served()
                if key in served:
                    held = BackendStatus(pool=key[0], key=key[1], reason=IN_ROTATION)
                else:
                    held = BackendStatus(
                        pool=key[0], key=key[1], state="down", reason=AWAITING, awaiting=True
                    )
                    changed = True
                self._status[key] = held
            elif held is not None and held.awaiting and not target.backend.wait_for_check:
                if held.checked_at is None:  # no longer waiting: trusted as a new backend
                    self._status[key] = BackendStatus(pool=key[0], key=key[1])
                    changed = True
                else:
                    held.awaiting = False  # down after its checks: rise applies
            self._targets[key] = target
            self._status.setdefault(key, BackendStatus(pool=key[0], key=key[1]))
            self._tasks[key] = asyncio.create_task(self._run(target), name=f"health {key}")
        if self._recompute_weights():
            changed = True
        if changed:
            self._changed()

    def _served(self) -> frozenset[Key]:
        if self._in_rotation is None:
            return frozenset()
        try:
            return self._in_rotation()
        except Exception:  # unreadable: the backends wait for their checks
            log.exception("reading the backends nginx serves failed")
            return frozenset()

    async def close(self) -> None:
        await cancel_all(list(self._tasks.values()))
        self._tasks.clear()
        await self._prober.aclose()

    # Checking --------------------------------------------------------------------------------

    async def _run(self, target: Target) -> None:
        interval = max(1.0, target.check.interval_s)
        status = self._status.get(target.key)
        if status is None or not status.awaiting:  # one out of rotation is checked at once
            await asyncio.sleep(random.uniform(0, min(interval, 1.0)))
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                result = await self._prober.probe(target)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug in a check must not stop the others
                log.exception("health check of %s failed", target.key)
                result = ProbeResult(False, f"check error: {type(exc).__name__}", None)
            if self._targets.get(target.key) is not target:
                return
            self.record(target, result)
            await asyncio.sleep(max(0.0, interval - (loop.time() - started)))

    def record(self, target: Target, result: ProbeResult) -> None:
        """Apply one check's result to the backend's counters and state."""
        status = self._status[target.key]
        now = datetime.now(UTC)
        first = status.checked_at is None
        status.checked_at = now
        status.reason = result.reason
        status.latency_ms = result.latency_ms
        if result.ok:
            status.successes += 1
            status.failures = 0
            if result.latency_ms is not None:
                status.latencies.append(result.latency_ms)
        else:
            status.failures += 1
            status.successes = 0
        new_state = status.state
        if result.fatal:
            new_state = "down"
        elif status.state == "unknown" or status.awaiting:
            new_state = "up" if result.ok else "down"
        elif status.state == "up" and status.failures >= target.check.unhealthy_threshold:
            new_state = "down"
        elif status.state == "down" and status.successes >= target.check.healthy_threshold:
            new_state = "up"
        if status.awaiting:
            if result.ok:
                status.awaiting = False
            else:
                status.reason = f"{AWAITING} to pass: {result.reason}"
                if first:
                    self.reported_changes.set()  # why it still gets no traffic
        changed = False
        if new_state != status.state:
            old = status.state
            status.state = new_state
            status.changed_at = now
            log.info(
                "backend %s of %s: %s -> %s (%s)",
                target.backend.key,
                target.pool,
                old,
                new_state,
                result.reason,
            )
            # unknown -> up changes nothing nginx serves (a new backend is in rotation),
            # but a pinned backend's: it was out until checked.
            changed = not (old == "unknown" and new_state == "up") or target.pinned
            self.reported_changes.set()
        if self._recompute_weights():
            changed = True
        if changed:
            self._changed()

    def _recompute_weights(self) -> bool:
        """Update the published dynamic weights; True when any of them changed."""
        by_pool: dict[str, dict[str, float]] = {}
        for key, target in self._targets.items():
            if target.algorithm != "dynamic":
                continue
            status = self._status[key]
            if status.state == "down" or not status.latencies:
                continue
            by_pool.setdefault(key[0], {})[key[1]] = statistics.median(status.latencies)
        wanted: dict[Key, int] = {}
        for pool, p50s in by_pool.items():
            for backend, weight in dynamic_weights(p50s).items():
                wanted[(pool, backend)] = weight
        changed = False
        for key in list(self._weights):
            if key not in wanted:
                del self._weights[key]
                changed = True
        for key, weight in wanted.items():
            if moved_enough(self._weights.get(key), weight):
                self._weights[key] = weight
                changed = True
        return changed

    def _changed(self) -> None:
        self.version += 1
        self.reported_changes.set()
        if self._on_change is not None:
            self._on_change()
