"""Uptime checks: the node checks every domain it serves, as a client would, through itself.

For each served domain, one check is up to three probes of the node's own engines:

- ``http``: ``GET /`` on the node's HTTP port with the domain as ``Host``; up unless it fails
  to connect, times out or answers 5xx (a redirect to HTTPS, a 404 are answers: the site is
  served);
- ``https`` (on a node with HTTPS, for a domain a served certificate covers): the same over
  TLS with the domain as SNI; the certificate's expiry (the one the snapshot serves for the
  name) rides along;
- ``dns`` (on a node with a DNS server): an ``A`` query for the domain to the node's own DNS
  port; up on an answer (NOERROR, with or without records, or NXDOMAIN for a name the
  zone does not hold), down on a timeout, SERVFAIL or REFUSED.

Every domain is checked every ``interval_s``, spread over the interval, at most
``max_per_s`` checks a second (at 10,000 domains and 20 a second: every 8 minutes 20). What
changed is reported at once (``changes``: the state of each probe, when it flips, and on the
first check), and each hour's totals per domain (``hours``: checks, failures, the latency sum)
with the analytics; the control plane makes the uptime percentages and the alerts of them.
Origins are checked by the pools' health checks (``health``), not here.

The checks are not traffic: they carry the ``User-Agent`` ``edgeplane-uptime/VERSION`` and come
from the node itself, and ``without_own_checks`` drops their access log lines before the
analytics, the metrics and the access log samples see them (a client elsewhere cannot send
from the node's own address, so it cannot hide its requests from them that way).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx

from edgeplane.protocol.config import CertSpec, EdgeConfig
from edgeplane.protocol.messages import UptimeHour, UptimeState
from edgeplane.version import __version__

TIMEOUT_S = 5.0
USER_AGENT = f"edgeplane-uptime/{__version__}"
_MARK = b'"ua":"edgeplane-uptime/'


def without_own_checks(lines: list[bytes], addresses: Iterable[str]) -> list[bytes]:
    """The access log lines but those of the node's own uptime checks (their user agent, and
    a client address of the node's: loopback or its bind address)."""
    if not any(_MARK in line for line in lines):
        return lines
    own = [f'"remote_addr":"{a}"'.encode() for a in {"127.0.0.1", "::1", *addresses}]
    return [x for x in lines if _MARK not in x or not any(a in x for a in own)]


MAX_ERROR = 300


@dataclass
class Probe:
    up: bool
    error: str | None
    latency_ms: float | None
    expires_at: datetime | None = None


@dataclass(slots=True)
class _Last:
    """What the last check of a probe saw, kept small (a node at 10,000 domains keeps 30,000):
    the report's ``UptimeState`` is made only for the changes."""

    up: bool
    since: datetime
    expires_at: datetime | None


@dataclass(slots=True)
class _Hour:
    checks: int = 0
    failures: int = 0
    latency_ms_sum: float = 0.0


@dataclass
class Targets:
    """What to check: domain -> (site, the not_after of the certificate served for it)."""

    domains: dict[str, tuple[str, datetime | None]] = field(default_factory=dict)


def targets_of(config: EdgeConfig, certs: Iterable[CertSpec] = ()) -> Targets:
    """The domains a snapshot serves, with the expiry of the certificate that covers each
    (the latest of those naming it, exactly or by a wildcard one level up): names are looked
    up in an index, so 10,000 domains and 10,000 certificates take milliseconds (comparing
    each domain with each certificate took a minute, on the agent's loop)."""
    expiry: dict[str, datetime] = {}
    for cert in certs or config.certs:
        try:
            at = datetime.fromisoformat(cert.not_after.replace("Z", "+00:00"))
        except ValueError:
            continue
        for name in cert.names:
            if name not in expiry or expiry[name] < at:
                expiry[name] = at
    out = Targets()
    for site in config.sites:
        for domain in site.domains:
            exact = expiry.get(domain)
            parent = domain.split(".", 1)[1] if "." in domain else ""
            wild = expiry.get(f"*.{parent}") if parent else None
            found = [at for at in (exact, wild) if at is not None]
            out.domains[domain] = (site.id, max(found) if found else None)
    return out


class UptimeChecker:
    def __init__(
        self,
        bind: str,
        http_port: int,
        https_port: int | None,
        dns: tuple[str, int] | None,
        *,
        interval_s: float = 60.0,
        max_per_s: float = 20.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.bind = "127.0.0.1" if bind in ("0.0.0.0", "::", "") else bind
        self.http_port = http_port
        self.https_port = https_port
        if dns is not None and dns[0] in ("0.0.0.0", "::", ""):
            dns = ("127.0.0.1", dns[1])
        self.dns = dns
        self.interval_s = interval_s
        self.max_per_s = max_per_s
        self.clock = clock
        self.targets = Targets()
        self.states: dict[tuple[str, str], _Last] = {}  # (kind, domain) -> last
        self._changed: dict[tuple[str, str], UptimeState] = {}
        self._hours: dict[tuple[str, int], _Hour] = {}  # (domain, hour epoch) -> totals
        self._dirty_hours: set[tuple[str, int]] = set()
        self._next: dict[str, float] = {}  # domain -> when its next check is due
        self.changes_wanted = asyncio.Event()
        headers = {"User-Agent": USER_AGENT}
        self._http = httpx.AsyncClient(trust_env=False, timeout=TIMEOUT_S, headers=headers)
        self._https = httpx.AsyncClient(
            trust_env=False, timeout=TIMEOUT_S, verify=False, headers=headers
        )

    async def aclose(self) -> None:
        await self._http.aclose()
        await self._https.aclose()

    def update(self, targets: Targets) -> None:
        """Follow the served snapshot: new domains are due at once, spread over a few
        seconds; domains no longer served are forgotten (their state reported gone)."""
        now = self.clock()
        for i, domain in enumerate(sorted(set(targets.domains) - set(self.targets.domains))):
            self._next[domain] = now + i / self.max_per_s
        for domain in set(self.targets.domains) - set(targets.domains):
            self._next.pop(domain, None)
            for kind in ("http", "https", "dns"):
                self.states.pop((kind, domain), None)
                self._changed.pop((kind, domain), None)
        self.targets = targets

    def due(self, limit: int) -> list[str]:
        now = self.clock()
        ready = sorted((at, d) for d, at in self._next.items() if at <= now)
        return [d for _at, d in ready[:limit]]

    async def run_once(self) -> int:
        """Check the domains that are due (at most a second's worth); the number checked."""
        domains = self.due(max(1, int(self.max_per_s)))
        if domains:
            await asyncio.gather(*(self.check(d) for d in domains))
        return len(domains)

    async def check(self, domain: str) -> None:
        site, expiry = self.targets.domains.get(domain, ("", None))
        if not site:
            return
        self._next[domain] = self.clock() + self.interval_s
        probes = {"http": self._probe_http(domain, False)}
        if self.https_port and expiry is not None:
            probes["https"] = self._probe_http(domain, True)
        if self.dns is not None:
            probes["dns"] = self._probe_dns(domain)
        results = dict(zip(probes, await asyncio.gather(*probes.values()), strict=True))
        if "https" in results:
            results["https"].expires_at = expiry
        self._record(domain, site, results)

    def _record(self, domain: str, site: str, results: dict[str, Probe]) -> None:
        now = datetime.fromtimestamp(self.clock(), UTC)
        for kind, probe in results.items():
            key = (kind, domain)
            last = self.states.get(key)
            if last is not None and last.up == probe.up and last.expires_at == probe.expires_at:
                continue
            since = now if last is None or last.up != probe.up else last.since
            self.states[key] = _Last(probe.up, since, probe.expires_at)
            self._changed[key] = UptimeState(
                kind=kind,
                target=domain,
                site=site,
                up=probe.up,
                error=probe.error,
                latency_ms=probe.latency_ms,
                checked_at=now,
                since=since,
                expires_at=probe.expires_at,
            )
            self.changes_wanted.set()
        hour = int(now.timestamp()) // 3600 * 3600
        totals = self._hours.setdefault((domain, hour), _Hour())
        totals.checks += 1
        totals.failures += 0 if all(p.up for p in results.values()) else 1
        totals.latency_ms_sum += results["http"].latency_ms or 0.0
        self._dirty_hours.add((domain, hour))
        for old in [k for k in self._hours if k[1] < hour - 3600]:  # keep this hour and last
            del self._hours[old]
            self._dirty_hours.discard(old)

    def take_changes(self) -> list[UptimeState]:
        out = list(self._changed.values())
        self._changed.clear()
        return out

    def give_back(self, changes: list[UptimeState]) -> None:
        """A report failed: send these again (unless newer ones replaced them)."""
        for state in changes:
            self._changed.setdefault((state.kind, state.target), state)

    def take_hours(self) -> list[UptimeHour]:
        out = []
        for domain, hour in sorted(self._dirty_hours):
            totals = self._hours.get((domain, hour))
            if totals is None:
                continue
            site = self.targets.domains.get(domain, ("", None))[0]
            if not site:  # no longer served here (deleted since): its hours are not reported
                continue
            out.append(
                UptimeHour(
                    target=domain,
                    site=site,
                    hour=datetime.fromtimestamp(hour, UTC),
                    checks=totals.checks,
                    failures=totals.failures,
                    latency_ms_sum=round(totals.latency_ms_sum, 3),
                )
            )
        self._dirty_hours.clear()
        return out

    def give_back_hours(self, hours: list[UptimeHour]) -> None:
        for h in hours:
            self._dirty_hours.add((h.target, int(h.hour.timestamp())))

    async def _probe_http(self, domain: str, tls: bool) -> Probe:
        scheme, port = ("https", self.https_port) if tls else ("http", self.http_port)
        client = self._https if tls else self._http
        url = f"{scheme}://{self.bind}:{port}/"
        started = time.perf_counter()
        try:
            extensions = {"sni_hostname": domain} if tls else {}
            response = await client.get(url, headers={"Host": domain}, extensions=extensions)
        except httpx.TimeoutException:
            return Probe(False, f"timeout after {TIMEOUT_S:g} s", None)
        except httpx.HTTPError as exc:
            return Probe(False, f"{type(exc).__name__}: {exc}"[:MAX_ERROR], None)
        ms = round((time.perf_counter() - started) * 1000, 3)
        if response.status_code >= 500:
            return Probe(False, f"status {response.status_code}", ms)
        return Probe(True, None, ms)

    async def _probe_dns(self, domain: str) -> Probe:
        import dns.asyncquery
        import dns.exception
        import dns.message
        import dns.rcode

        assert self.dns is not None
        address, port = self.dns
        started = time.perf_counter()
        try:
            query = dns.message.make_query(domain, "A")
            answer = await dns.asyncquery.udp(query, address, port=port, timeout=TIMEOUT_S)
        except dns.exception.Timeout:
            return Probe(False, f"no answer within {TIMEOUT_S:g} s", None)
        except (OSError, dns.exception.DNSException) as exc:
            return Probe(False, f"{type(exc).__name__}: {exc}"[:MAX_ERROR], None)
        ms = round((time.perf_counter() - started) * 1000, 3)
        rcode = answer.rcode()
        if rcode in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            return Probe(True, None, ms)
        return Probe(False, f"answered {dns.rcode.to_text(rcode)}", ms)
