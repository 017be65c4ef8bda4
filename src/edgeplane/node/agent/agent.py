"""The agent's loop: follow the node's snapshot, keep nginx serving it, report back.

At start the agent applies its saved snapshot at once (the node serves before the control
plane answers, and while it does not), then registers (retrying forever) and long-polls
``after=<newest revision received>``. A new snapshot with a different content hash is applied
through the engine (render, ``nginx -t``, swap, reload, probe, roll back on failure), saved to
disk only when nginx accepted it, and acknowledged with its hash, apply time, error and
memory figures; a snapshot with the hash already served is acknowledged at once without
touching nginx. Purges in a poll run at once, beside any apply, and are acknowledged one by
one. Active health check changes are rendered into nginx (a graceful reload) on top of the
snapshot being served and reported to the control plane (at least every 30 s). The access
log is aggregated per minute and reported every ``analytics_interval_s``, each report followed
by the newest lines per domain (``access_samples``), the edge functions' invocations per
minute and their console lines (``function_stats``). Every second the
agent makes sure nginx runs and restarts it if it died. SIGINT / SIGTERM stop nginx and the
agent; so does the end of the process that started it, with ``parent_pid`` (``edgeplane up``).

With a DNS engine (``edgeplane.node.powerdns.engine.DnsEngine``: the node's PowerDNS), the zones of
each snapshot are applied to it as soon as they change, independently of nginx (a refused
zone change leaves every zone as it was and is reported). A heartbeat every
``heartbeat_interval_s`` tells the control plane the node is alive, whether nginx and the DNS
server run, and the zone serials served: GeoDNS answers with live nodes only.
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import logging
import os
import signal
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from edgeplane.node.agent import heap
from edgeplane.node.agent.access_samples import AccessSampler
from edgeplane.node.agent.analytics import (
    LogTailer,
    TrafficAggregator,
    backend_map,
    country_locator,
    resolve_host,
    rotate,
)
from edgeplane.node.agent.bots import BotCollector, BotWatch
from edgeplane.node.agent.bundles import BundleStore
from edgeplane.node.agent.client import (
    Backoff,
    EdgeClient,
    ProtocolError,
    Rejected,
    Unreachable,
)
from edgeplane.node.agent.function_stats import (
    FunctionAggregator,
    FunctionConsole,
    console_log_path,
)
from edgeplane.node.agent.functions import FunctionHost
from edgeplane.node.agent.health import HealthChecker
from edgeplane.node.agent.metrics import AgentMetrics, NodeView
from edgeplane.node.agent.metrics_server import MetricsServer
from edgeplane.node.agent.objects import ObjectError, ObjectStore
from edgeplane.node.agent.orphans import kill_orphan_workers
from edgeplane.node.agent.statedir import StateDir
from edgeplane.node.agent.tasks import cancel_all
from edgeplane.node.agent.uptime import UptimeChecker, targets_of, without_own_checks
from edgeplane.node.agent.waf_log import WafMatches, audit_log_path, truncate_if_large
from edgeplane.node.lifeline import parent_gone
from edgeplane.node.nginx.local import LocalHealth
from edgeplane.protocol import lenient
from edgeplane.protocol.config import (
    AcmeHttpSpec,
    CertSpec,
    EdgeConfig,
    EdgeManifest,
    GeoDnsSpec,
    ZoneSpec,
    canonical_body,
    object_hash,
)
from edgeplane.protocol.messages import (
    Ack,
    AnalyticsReport,
    HealthReport,
    Heartbeat,
    NodeRegister,
    PurgeAck,
    PurgeTask,
    UptimeReport,
)
from edgeplane.protocol.versions import PROTOCOL_VERSION
from edgeplane.version import __version__

log = logging.getLogger("edgeplane.agent")

KEEP_PURGE_ACKS = 1000
BUNDLE_RETRY_S = 3.0
# The served manifest goes to disk at most this often: at 10,000 domains each save dumps and
# writes megabytes, and a burst of changes saved each one (the last of a burst is saved after
# it, and at shutdown; a node that dies meanwhile restarts on the one before, then catches up).
SAVE_SPACING_S = 2.0
DNS_RETRY_S, DNS_RETRY_MAX_S = 1.0, 30.0  # a refused DNS apply is tried again, backing off
NOT_SERVING_YET = "starting: nginx serves no configuration yet"


class ApplyOutcome(Protocol):
    @property
    def ok(self) -> bool: ...
    @property
    def duration_ms(self) -> float: ...
    @property
    def error(self) -> str | None: ...


class DnsOutcome(ApplyOutcome, Protocol):
    @property
    def serials(self) -> dict[str, int]: ...


class DnsServer(Protocol):
    """What the agent needs of its DNS server (``edgeplane.node.powerdns.engine.DnsEngine``):
    zones by reference (name -> object hash), loaded from the store only when they changed."""

    def apply_refs(
        self, zones: Mapping[str, str], load: Callable[[str], ZoneSpec]
    ) -> DnsOutcome: ...
    def ensure_running(self) -> bool: ...
    def stop(self) -> None: ...


class Engine(Protocol):
    """What the agent needs of the data plane (``edgeplane.node.nginx.engine.NginxEngine``)."""

    def apply(
        self,
        config: EdgeConfig,
        health: LocalHealth,
        full_cert: Callable[[str], CertSpec] | None = None,
    ) -> ApplyOutcome: ...
    def ensure_running(self) -> bool: ...
    def stop(self) -> None: ...
    def purge(self, task: PurgeTask) -> int: ...
    def publish_acme(self, answers: tuple[AcmeHttpSpec, ...]) -> int: ...
    @property
    def access_log(self) -> Path: ...
    @property
    def bundle_root(self) -> Path: ...
    @property
    def bot_flags(self) -> Path: ...
    def stats(self) -> dict[str, float]: ...


@dataclass(frozen=True)
class AgentOptions:
    control_plane: str | tuple[str, ...]  # its URLs (replicas): tried in turn (EdgeClient)
    token: str
    name: str
    region: str
    state_dir: Path
    http_port: int | None = None
    https_port: int | None = None
    address: str | None = None
    bind: str = "127.0.0.1"  # where nginx listens (the bundle checks request it there)
    pid_file: Path | None = None  # the nginx master's pid file (log rotation)
    poll_wait_s: float = 25.0
    analytics_interval_s: float = 10.0
    health_report_interval_s: float = 30.0
    supervise_interval_s: float = 1.0
    heartbeat_interval_s: float = 1.0
    log_rotate_bytes: int = 256 << 20
    dns_port: int | None = None  # where the node's DNS server answers (its uptime checks)
    dns_address: str = "127.0.0.1"
    uptime_interval_s: float = 60.0  # each served domain checked this often (node.agent.uptime)
    uptime_max_per_s: float = 20.0


def agent_rss_mib() -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return 0.0


class Agent:
    def __init__(
        self,
        options: AgentOptions,
        engine: Engine,
        client: EdgeClient | None = None,
        dns: DnsServer | None = None,
        metrics_server: MetricsServer | None = None,
        functions: FunctionHost | None = None,
    ) -> None:
        """``metrics_server``: the node's metrics port, bound (``edgeplane edge`` binds it
        before anything starts, so a port taken fails at once); the agent serves its metrics
        there while it runs."""
        self.options = options
        self.engine = engine
        self.dns = dns
        self.dns_serials: dict[str, int] = {}  # zone -> serial served
        self._serials_sent: dict[str, int] | None = None  # as the control plane last got them
        self.dns_error: str | None = None
        self.dns_restarts = 0
        self._dns_failures = 0  # DNS applies refused in a row
        self._dns_applied: dict[str, str] | None = None  # zone -> object hash served
        # zone -> object hash of the DNS apply in progress, and of the geo answers last asked
        # for: their objects stay in the store until they are read.
        self._dns_applying: dict[str, str] = {}
        self._geo_refs: dict[str, str] = {}
        self._geo_applied: GeoDnsSpec | None = None  # the geo answers last asked for
        # The manifest whose objects are being fetched (its objects, not a set of their
        # 20,000 names: 2 MiB at 10,000 domains).
        self._resolving: EdgeManifest | None = None
        self._dns_wanted = asyncio.Event()
        self._healthy = True
        self._unhealthy_reason: str | None = None
        self.client = client or EdgeClient(options.control_plane, options.token)
        self.state = StateDir(options.state_dir)
        self.node_id: str | None = None
        self.after = -1  # the newest revision received; -1: none yet (answer at once)
        self.desired: EdgeConfig | None = None  # the newest snapshot received
        self.manifest: EdgeManifest | None = None  # its manifest (None: a legacy snapshot)
        self._whole = False  # a delta did not fit the manifest held: ask for the next whole
        self.zones: dict[str, str] = {}  # its zones: name -> object hash
        # By revision: the newest received, the one being applied and the one nginx serves
        # (10 MiB each at 10,000 domains: no more are kept; most often they are one).
        self._manifests: dict[int, EdgeManifest] = {}
        self._applying: int | None = None  # the revision nginx is given now
        self.objects = ObjectStore(self.state.objects_path)
        self.serving: EdgeConfig | None = None  # the snapshot nginx serves
        self.failed_hashes: set[str] = set()  # http hashes of snapshots nginx refused
        self.nginx_restarts = 0
        self._served_health = -1
        self._saved: tuple[int, str] | None = None  # (revision, hash) on disk
        self._saved_at = -SAVE_SPACING_S  # monotonic time of the last save
        self._save_later: asyncio.Task[None] | None = None
        self._acked_revision: int | None = None
        self._apply_wanted = asyncio.Event()
        self._pending_ack: Ack | None = None
        self._ack_wanted = asyncio.Event()
        self._purge_tasks: dict[str, asyncio.Task[None]] = {}
        self._purge_acks: dict[str, PurgeAck] = {}
        self._registered = asyncio.Event()
        self._heartbeat_now = asyncio.Event()
        self._acme_wanted = asyncio.Event()
        self.health = HealthChecker(
            on_change=self._apply_wanted.set,
            certs=self.objects.full_cert,
            # what nginx serves in rotation (the release it runs): a wait_for_check backend
            # in it stays there across a restart of the agent
            in_rotation=getattr(engine, "in_rotation", None),
        )
        self.bundles = BundleStore(engine.bundle_root, self.client.download_bundle)
        # the edge functions (none without a runtime: the node then registers without them)
        self.functions = functions or FunctionHost(
            None,
            engine.access_log.parent.parent,
            options.state_dir,
            why_not="no function runtime was given to this agent",
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._last_result: tuple[str, ApplyOutcome] | None = None
        # The snapshot's fields this agent does not know (``protocol.lenient``): those of the
        # manifest held (since the last whole one), and those named in acks and logs so far.
        self._ignored: set[str] = set()
        self._ignored_logged: set[str] = set()
        self._last_ack: Ack | None = None
        self.uptime = UptimeChecker(
            options.bind,
            options.http_port or 80,
            options.https_port,
            (options.dns_address, options.dns_port) if dns and options.dns_port else None,
            interval_s=options.uptime_interval_s,
            max_per_s=options.uptime_max_per_s,
        )
        self.metrics = AgentMetrics()
        self.metrics.watch(self._metrics_view(), self._dns_metrics_url)
        self.bots = BotWatch(engine.bot_flags)
        self.metrics.registry.register(BotCollector(self.bots))
        self.metrics_server = metrics_server
        if metrics_server is not None:
            metrics_server.registry = self.metrics.registry

    # Running ---------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set, then stop nginx."""
        self.state.prepare()
        if self.metrics_server is not None:
            self.metrics_server.start()
        try:
            saved = await asyncio.to_thread(self._load_saved)
            if saved is not None:
                log.info("serving the saved snapshot (revision %d)", saved.revision)
                self.desired = saved
                self.after = saved.revision
                self._saved = (saved.revision, saved.content_hash())
                self._acked_revision = saved.revision
                # checks first: a pinned origin is out of rotation until checked
                self.health.update(saved.pools)
                await self._apply(saved)
                await self._apply_dns(self.zones)
                self._acme_wanted.set()
            self._spawn(self._poll_loop, "poll")
            self._spawn(self._apply_loop, "apply")
            self._spawn(self._ack_loop, "ack")
            self._spawn(self._health_report_loop, "health report")
            self._spawn(self._analytics_loop, "analytics")
            self._spawn(self._uptime_loop, "uptime")
            self._spawn(self._supervise_loop, "supervise")
            self._spawn(self._heartbeat_loop, "heartbeat")
            self._spawn(self._acme_loop, "acme")
            if self.dns is not None:
                self._spawn(self._dns_loop, "dns")
            await stop.wait()
        finally:
            await self.shutdown()

    def _load_saved(self) -> EdgeConfig | None:
        """The last good snapshot on disk: the manifest resolved from the object store, else
        a full snapshot saved by an older agent (its zones moved into the store)."""
        manifest = self.state.load_manifest()
        if manifest is not None:
            try:
                config = manifest.resolve(self.objects.certs(manifest.certs))
            except ObjectError as exc:
                log.warning("the saved manifest names an object the store lacks: %s", exc)
            else:
                self._take(manifest)
                return config
        legacy = self.state.load_snapshot()
        if legacy is None:
            return None
        manifest = self._adopt(legacy, legacy.content_hash())
        self._take(manifest)
        return manifest.resolve(self.objects.certs(manifest.certs))

    async def shutdown(self) -> None:
        started = time.monotonic()
        later = [self._save_later] if self._save_later is not None else []
        await cancel_all([*self._tasks, *self._purge_tasks.values(), *later])
        self._tasks.clear()
        await asyncio.to_thread(self._flush_save)
        await self.health.close()
        await self.bundles.close()
        await self.uptime.aclose()
        log.info("loops stopped in %.2fs; stopping the engines", time.monotonic() - started)
        took: dict[str, float] = {}

        def timed(name: str, stop: Callable[[], None]) -> Callable[[], None]:
            def run() -> None:
                began = time.monotonic()
                stop()
                took[name] = time.monotonic() - began

            return run

        engines = [asyncio.to_thread(timed("nginx", self.engine.stop))]
        if self.dns is not None:
            engines.append(asyncio.to_thread(timed("DNS", self.dns.stop)))
        if self.functions.process is not None:
            engines.append(asyncio.to_thread(timed("functions", self.functions.stop)))
        if self.metrics_server is not None:
            engines.append(asyncio.to_thread(timed("metrics", self.metrics_server.stop)))
        await asyncio.gather(*engines)  # side by side: each has its own deadline
        await self.client.aclose()
        log.info(
            "stopped in %.2fs (%s)",
            time.monotonic() - started,
            ", ".join(f"{name} {s:.2f}s" for name, s in took.items()),
        )

    def _spawn(self, loop: Callable[[], Coroutine[Any, Any, None]], name: str) -> None:
        async def guarded() -> None:
            while True:
                try:
                    await loop()
                    return
                except asyncio.CancelledError:
                    raise
                except Exception:  # a bug in one loop must not stop the node serving
                    log.exception("the %s loop failed; restarting it", name)
                    await asyncio.sleep(1)

        self._tasks.append(asyncio.create_task(guarded(), name=name))

    # Registering and polling -----------------------------------------------------------------

    async def _register(self) -> None:
        backoff = Backoff()
        outage_logged = False
        body = NodeRegister(
            name=self.options.name,
            region=self.options.region,
            address=self.options.address,
            http_port=self.options.http_port,
            https_port=self.options.https_port,
            dns_port=self.options.dns_port if self.dns is not None else None,
            local_ports=self._local_ports(),
            version=__version__,
            protocol=PROTOCOL_VERSION,
            functions=self.functions.capable,
        )
        while True:
            try:
                node = await self.client.register(body)
            except Unreachable as exc:
                if not outage_logged:
                    log.warning("control plane unreachable, retrying: %s", exc)
                    outage_logged = True
            except Rejected as exc:
                log.error("registration refused: %s", exc)
            else:
                self.node_id = node.id
                self._serials_sent = None  # a node registered afresh gets them whole
                self.state.save_node_id(node.id, node.name)
                log.info("registered as %s (%s, region %s)", node.id, node.name, node.region)
                self._registered.set()
                self._ack_wanted.set()
                self._heartbeat_now.set()
                self.health.reported_changes.set()
                return
            await backoff.sleep()

    async def _poll_loop(self) -> None:
        backoff = Backoff()
        outage_logged = False
        while True:
            if self.node_id is None:
                await self._register()
            assert self.node_id is not None
            held = self.manifest
            have = None
            if held is not None and held.revision == self.after and not self._whole:
                have = held.hash  # the answer may be a delta from it
            try:
                poll, ignored = await self.client.poll(
                    self.node_id, self.after, self.options.poll_wait_s, have
                )
            except Unreachable as exc:
                if not outage_logged:
                    log.warning("control plane unreachable, serving what we have: %s", exc)
                    outage_logged = True
                await backoff.sleep()
                continue
            except Rejected as exc:
                log.error("poll refused: %s", exc)
                if exc.status == 404:  # the node was removed: register again
                    self.node_id = None
                    self._registered.clear()
                await backoff.sleep()
                continue
            if outage_logged:
                log.info("control plane reachable again")
                outage_logged = False
            backoff.reset()
            fresh = self._start_purges(poll.purges)
            manifest = poll.manifest
            if poll.delta is not None:
                try:
                    if held is None:
                        raise ValueError("no manifest is held")
                    manifest = poll.delta.apply(held)
                    log.info(
                        "revision %d received as changes to revision %d",
                        manifest.revision,
                        held.revision,
                    )
                except ValueError as exc:
                    log.warning("revision %d: %s; asking for it whole", poll.delta.revision, exc)
                    self._whole = True
                    continue
            if poll.manifest is not None or poll.config is not None:
                self._ignored = set(ignored)  # whole: what the held manifest left out
            else:
                self._ignored.update(ignored)  # a delta: on top of those of its base
            if manifest is not None:
                try:
                    config = await self._resolve(manifest)
                except (ProtocolError, ObjectError) as exc:
                    # Most often: the control plane moved on (objects of old revisions go).
                    log.warning("objects of revision %d not had: %s", manifest.revision, exc)
                    await backoff.sleep()
                    continue
                self.after = manifest.revision
                if poll.manifest is not None:
                    self._whole = False  # had whole: deltas again
                self._take(manifest)
                self._receive(config)
            elif poll.config is not None:  # a control plane without manifests
                manifest = await asyncio.to_thread(self._adopt, poll.config, poll.hash)
                config = await self._resolve(manifest)
                self.after = manifest.revision
                self._take(manifest)
                self._receive(config)
            elif poll.revision < self.after:
                # The control plane's state is older than ours (restored or replaced): take
                # whatever it has now.
                log.warning(
                    "control plane revision %d is older than ours (%d)", poll.revision, self.after
                )
                self.after = -1
            elif poll.purges and not fresh:
                # Only purges already being handled: let them finish instead of spinning.
                running = [t for t in self._purge_tasks.values() if not t.done()]
                if running:
                    await asyncio.wait(running, timeout=1.0)
                else:
                    await asyncio.sleep(0.05)

    async def _resolve(self, manifest: EdgeManifest) -> EdgeConfig:
        """Fetch the objects ``manifest`` names that the store lacks; the snapshot to serve.
        Its objects stay in the store (``_resolving``) while they are fetched: a save of the
        revision nginx just applied prunes the store meanwhile (it removed thousands of
        objects a fetch had just written, under load)."""
        self._resolving = manifest
        missing = self.objects.missing(set(manifest.objects()))
        if missing:
            assert self.node_id is not None
            started = time.monotonic()

            async def keep(batch: dict[str, Any]) -> None:
                await asyncio.to_thread(self._keep_objects, batch)

            await self.client.fetch_objects(self.node_id, missing, keep)
            log.info(
                "fetched %d objects for revision %d in %.0f ms",
                len(missing),
                manifest.revision,
                (time.monotonic() - started) * 1000,
            )
        certs = await asyncio.to_thread(self.objects.certs, manifest.certs)
        if len(missing) >= heap.LARGE:
            await asyncio.to_thread(heap.release)
        return manifest.resolve(certs)

    def _take(self, manifest: EdgeManifest) -> None:
        self.manifest, self.zones = manifest, dict(manifest.zones)
        self._manifests[manifest.revision] = manifest
        self._forget_manifests()

    def _forget_manifests(self) -> None:
        """Keep the manifests of the newest revision, of the one being applied (the newest may
        arrive meanwhile: the applied one is saved once nginx took it) and of the one served
        only."""
        keep: set[int | None] = set(sorted(self._manifests)[-1:])
        keep.add(self._applying)
        keep.add(self.serving.revision if self.serving is not None else None)
        for old in [r for r in self._manifests if r not in keep]:
            del self._manifests[old]

    def _keep_objects(self, batch: dict[str, Any]) -> None:
        for digest, doc in batch.items():
            self.objects.put(digest, doc)

    async def _refetch(self, hashes: Iterable[str]) -> int:
        """Fetch again the objects among ``hashes`` (those of the revision held) that the store
        lacks: a file lost, or dropped as damaged when it was read. The number fetched (0 when
        none was missing or the control plane could not give them: the caller's retry, or the
        next revision, tries again)."""
        missing = self.objects.missing(set(hashes))
        if not missing or self.node_id is None:
            return 0

        async def keep(batch: dict[str, Any]) -> None:
            await asyncio.to_thread(self._keep_objects, batch)

        try:
            await self.client.fetch_objects(self.node_id, missing, keep)
        except (ProtocolError, ObjectError) as exc:
            log.warning("%d objects missing from the store not had again: %s", len(missing), exc)
            return 0
        log.warning("fetched again %d objects missing from the store", len(missing))
        return len(missing)

    def _adopt(self, config: EdgeConfig, content_hash: str) -> EdgeManifest:
        """A full snapshot (from a control plane without manifests, or saved by an older
        agent) as a manifest, its zones and certificates put in the store."""

        def put(spec: ZoneSpec | CertSpec) -> str:
            doc = spec.model_dump(mode="json")
            digest = object_hash(canonical_body(doc))
            if digest not in self.objects.known():
                self.objects.put(digest, doc)
            return digest

        return EdgeManifest(
            revision=config.revision,
            hash=content_hash,
            http_hash=config.http_hash(),
            node=config.node,
            sites=config.sites,
            pools=config.pools,
            certs=tuple(put(c) for c in config.certs),
            zones={z.name: put(z) for z in config.zones},
            verifications=config.verifications,
            acme_http=config.acme_http,
            ticket_keys=config.ticket_keys,
            geo=config.geo,
            bundles=config.bundles,
            prefetch=config.prefetch,
            functions=config.functions,
        )

    def _receive(self, config: EdgeConfig) -> None:
        self.desired = config
        self._note_ignored()
        self.bundles.prefetch(config)
        self.health.update(config.pools)
        self._dns_wanted.set()
        self._acme_wanted.set()
        self._apply_wanted.set()

    async def _acme_loop(self) -> None:
        """ACME HTTP-01 answers go to files at once, beside any nginx apply."""
        published: tuple[AcmeHttpSpec, ...] | None = None
        while True:
            await self._acme_wanted.wait()
            self._acme_wanted.clear()
            desired = self.desired
            if desired is None or desired.acme_http == published:
                continue
            try:
                await asyncio.to_thread(self.engine.publish_acme, desired.acme_http)
                published = desired.acme_http
            except OSError:
                log.exception("publishing ACME answers failed")
                await asyncio.sleep(1)
                self._acme_wanted.set()

    # DNS -------------------------------------------------------------------------------------

    async def _dns_loop(self) -> None:
        while True:
            await self._dns_wanted.wait()
            self._dns_wanted.clear()
            if self.desired is not None:
                await self._apply_dns(self.zones)

    async def _apply_dns(self, zones: dict[str, str]) -> None:
        if self.dns is None:
            return
        if zones == self._dns_applied:
            # A change of which nodes are live changes the geo answers alone, no zone.
            self._apply_geo(zones)
            return
        self._dns_applying = zones
        try:
            result = await asyncio.to_thread(self.dns.apply_refs, zones, self.objects.zone)
        finally:
            self._dns_applying = {}
        if len(getattr(result, "changed", ())) >= heap.LARGE:
            await asyncio.to_thread(heap.release)
        else:
            heap.trim()
        self._note_ignored(reack=True)  # the zones read may hold fields not known here
        if result.ok:
            self._dns_applied = zones
            self.dns_serials = dict(result.serials)
            self.dns_error = None
            log.info("DNS: %d zones served (%.0f ms)", len(zones), result.duration_ms)
            self._geo_applied = None  # the zones changed: the geo answers are rendered again
            self._apply_geo(zones)
            self._dns_failures = 0
        else:
            self.dns_error = result.error
            # Tried again without waiting for another revision: a change whose zones were not
            # seen served in time (a loaded machine) would else wait for the next change, and
            # a bench or a user adding domains one after another waits for this one first.
            delay = min(DNS_RETRY_MAX_S, DNS_RETRY_S * 2**self._dns_failures)
            self._dns_failures += 1
            log.error("DNS refused the zones (again in %.0f s): %s", delay, result.error)
            if await self._refetch(zones.values()):
                delay = DNS_RETRY_S  # what was missing is back: at once, not after backing off
            asyncio.get_running_loop().call_later(delay, self._dns_wanted.set)
        self._heartbeat_now.set()

    def _apply_geo(self, zones: dict[str, str]) -> None:
        """Ask the DNS engine for the geo answers of ``zones`` and the desired ``geo`` (in
        the background: ``node.powerdns.geo``), unless those are what it was last asked."""
        geo = getattr(self.dns, "apply_geo_refs", None)
        desired = self.desired
        if geo is None or desired is None or desired.geo == self._geo_applied:
            return
        refs = dict(zones)
        self._geo_refs = refs
        self._geo_applied = desired.geo
        # It reads only the zones new or changed since its last call (one new zone among
        # 10,000 is one zone read, not 10,000), one at a time.
        geo(refs, self.objects.zone, desired.geo)

    # Heartbeats ------------------------------------------------------------------------------

    def heartbeat_body(self) -> Heartbeat:
        """The heartbeat; zone serials only when they changed since the control plane last
        got them, and then only those that changed (10,000 zones are 300 KB a second else)."""
        serials: dict[str, int] | None = dict(self.dns_serials)
        partial = False
        sent = self._serials_sent
        if sent is not None and serials is not None:
            if serials == sent:
                serials = None
            else:
                delta = {z: s for z, s in serials.items() if sent.get(z) != s}
                delta.update((z, 0) for z in sent if z not in serials)
                serials, partial = delta, True
        # Not serving yet (its first apply to come, or refused): not healthy, so that no
        # geo answer sends clients to a port nothing listens on.
        starting = self.serving is None
        return Heartbeat(
            healthy=self._healthy and not starting,
            reason=NOT_SERVING_YET if starting else self._unhealthy_reason,
            dns_serials=serials,
            dns_serials_partial=partial,
            dns_error=(self.dns_error or None) and self.dns_error[:20000],
            bundles=self.bundles.report_models(),
            functions=self.functions.report_models(),
        )

    async def _heartbeat_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._heartbeat_now.wait(), self.options.heartbeat_interval_s
                )
            self._heartbeat_now.clear()
            if self.node_id is None:
                continue
            serials = dict(self.dns_serials)
            try:
                await self.client.heartbeat(self.node_id, self.heartbeat_body())
                self._serials_sent = serials
            except ProtocolError as exc:
                self._serials_sent = None  # unknown: send them whole next time
                log.debug("heartbeat not sent: %s", exc)

    # Applying --------------------------------------------------------------------------------

    def _choose(self) -> EdgeConfig | None:
        """The snapshot to render: the newest, unless nginx refused it (then the one served,
        so that health changes still reach nginx)."""
        desired = self.desired
        if desired is not None and desired.http_hash() in self.failed_hashes:
            return self.serving
        return desired

    async def _apply_loop(self) -> None:
        while True:
            await self._apply_wanted.wait()
            self._apply_wanted.clear()
            desired = self.desired
            if desired is None:
                continue
            config = self._choose()
            if config is not None:
                await self._apply(config)
            if desired.revision != self._acked_revision:
                self._ack_revision(desired)

    def _check_urls(self) -> tuple[str, str | None]:
        host = self.options.bind if self.options.bind not in ("0.0.0.0", "::") else "127.0.0.1"
        host = f"[{host}]" if ":" in host else host
        tls = f"https://{host}:{self.options.https_port}" if self.options.https_port else None
        return f"http://{host}:{self.options.http_port}", tls

    async def _bundles_served(self, config: EdgeConfig) -> None:
        """Check the bundles nginx now serves; the reports go out at once."""
        base, tls = self._check_urls()
        if await self.bundles.check(config, base, tls):
            self._heartbeat_now.set()
        await asyncio.to_thread(self.bundles.collect, config)

    async def _functions_served(self, config: EdgeConfig) -> None:
        """Run the functions of ``config``, which nginx now serves (its routes and ``@fn``
        first: a new version with the same routes comes here without a reload)."""
        if await self.functions.apply(config, self._check_urls()[0]):
            self._heartbeat_now.set()

    async def _apply(self, config: EdgeConfig) -> None:
        """Render ``config`` with the current health decision, unless nginx already serves
        exactly that. Its bundles are fetched first; one that cannot be had is tried again
        in a few seconds (meanwhile the site keeps what it served)."""
        self._applying = config.revision  # its manifest is kept until it is saved
        try:
            await self._apply_now(config)
        finally:
            self._applying = None

    async def _apply_now(self, config: EdgeConfig) -> None:
        config, complete = await self.bundles.prepare(config, self.serving)
        if not complete:
            asyncio.get_running_loop().call_later(BUNDLE_RETRY_S, self._apply_wanted.set)
        version = self.health.version
        if (
            self.serving is not None
            and self.serving.http_hash() == config.http_hash()
            and version == self._served_health
        ):
            self.serving = config
            await self._save(config)
            await self._functions_served(config)
            await self._bundles_served(config)
            return
        if await self.functions.preload(config, self.serving):
            self._heartbeat_now.set()
        down, weights = self.health.decision()
        result = await asyncio.to_thread(
            self.engine.apply,
            config,
            LocalHealth(down=down, weights=weights),
            self.objects.full_cert,
        )
        heap.trim()  # what the render freed (megabytes of text at 10,000 domains)
        self.metrics.apply_duration.labels("ok" if result.ok else "failed").observe(
            result.duration_ms / 1000
        )
        digest = config.http_hash()
        if result.ok:
            if self.serving is None:
                self._heartbeat_now.set()  # serving now: live at once (see heartbeat_body)
            self.serving = config
            self._served_health = version
            self.failed_hashes.discard(digest)
            await self._save(config)
            await self._functions_served(config)
            await self._bundles_served(config)
            timings = getattr(result, "timings", None)
            log.info(
                "applied revision %d (%s) in %.0f ms%s",
                config.revision,
                config.content_hash(),
                result.duration_ms,
                f" ({timings()})" if timings is not None else "",
            )
        else:
            self.failed_hashes.add(digest)
            log.error(
                "nginx refused revision %d (%s): %s",
                config.revision,
                config.content_hash(),
                result.error,
            )
            manifest = self._manifests.get(config.revision)
            if manifest is not None and await self._refetch(manifest.certs):
                # A certificate's object was missing: the revision is tried again (and
                # acknowledged again) once the refusal has been acknowledged.
                def again() -> None:
                    self.failed_hashes.discard(digest)
                    self._acked_revision = None
                    self._apply_wanted.set()

                asyncio.get_running_loop().call_later(DNS_RETRY_S, again)
        self._last_result = (digest, result)

    async def _save(self, config: EdgeConfig) -> None:
        key = (config.revision, config.content_hash())
        if self._saved == key:
            return
        wait = self._saved_at + SAVE_SPACING_S - time.monotonic()
        if wait > 0:
            if self._save_later is None:
                self._save_later = asyncio.create_task(self._save_served(wait))
            return
        manifest = self._manifests.get(config.revision)
        self._forget_manifests()
        if manifest is not None:
            self._saved_at = time.monotonic()
            await asyncio.to_thread(self._save_manifest, manifest)
        self._saved = key

    async def _save_served(self, after_s: float) -> None:
        """Save what nginx serves then (the newest of a burst of changes)."""
        await asyncio.sleep(after_s)
        self._save_later = None  # a save still too early puts itself off again
        if self.serving is not None:
            await self._save(self.serving)

    def _flush_save(self) -> None:
        """At shutdown: the served manifest to disk if a save of it was put off."""
        serving = self.serving
        if serving is None:
            return
        key = (serving.revision, serving.content_hash())
        manifest = self._manifests.get(serving.revision)
        if manifest is not None and self._saved != key:
            self.state.save_manifest(manifest)
            self._saved = key

    def _save_manifest(self, manifest: EdgeManifest) -> None:
        self.state.save_manifest(manifest)
        keep = set(manifest.objects())
        keep.update(self.zones.values())
        for recent in list(self._manifests.values()):
            keep.update(recent.objects())
        if self._dns_applied is not None:
            keep.update(self._dns_applied.values())
        keep.update(self._dns_applying.values())
        keep.update(self._geo_refs.values())
        resolving = self._resolving
        if resolving is not None:
            keep.update(resolving.objects())
        removed = self.objects.prune(keep)
        if removed:
            log.info("object store: %d objects no longer named removed", removed)

    def _ack_revision(self, desired: EdgeConfig) -> None:
        digest = desired.http_hash()
        last = self._last_result
        ok = digest not in self.failed_hashes
        apply_ms = 0.0
        error = None
        if last is not None and last[0] == digest:
            apply_ms = max(0.0, float(last[1].duration_ms))
            if not ok:
                error = (last[1].error or "nginx refused the configuration")[:20000]
        self._acked_revision = desired.revision
        self._pending_ack = Ack(
            revision=desired.revision,
            hash=desired.content_hash(),
            ok=ok,
            apply_ms=round(apply_ms, 3),
            error=error,
            stats=self._stats(),
            ignored=self.ignored_fields(),
        )
        self._last_result = None
        self._ack_wanted.set()

    def ignored_fields(self) -> list[str]:
        """The snapshot's fields this agent did not know and left out (its manifest's and its
        objects'), as its acks name them."""
        return sorted(self._ignored | self.objects.ignored)[: lenient.MAX_PATHS]

    def _note_ignored(self, reack: bool = False) -> None:
        """Log the ignored fields not logged yet; with ``reack``, when the last ack (of the
        newest revision) did not name them all (objects read after it), acknowledge its
        revision again with them."""
        paths = self.ignored_fields()
        new = [p for p in paths if p not in self._ignored_logged]
        if new:
            self._ignored_logged.update(new)
            log.warning(
                "the snapshot holds fields this agent does not know, ignored: %s (a newer "
                "control plane: upgrade the agent)",
                ", ".join(new),
            )
        last, desired = self._last_ack, self.desired
        if (
            reack
            and last is not None
            and desired is not None
            and last.revision == desired.revision
            and self._pending_ack is None
            and last.ignored != paths
        ):
            self._pending_ack = last.model_copy(update={"ignored": paths})
            self._ack_wanted.set()

    def _stats(self) -> dict[str, float]:
        stats: dict[str, float] = {}
        try:
            stats.update(self.engine.stats())
        except Exception:
            log.exception("reading nginx figures failed")
        stats["agent_rss_mib"] = agent_rss_mib()
        stats["nginx_restarts"] = float(self.nginx_restarts)
        if self.dns is not None:
            stats["dns_zones"] = float(len(self.dns_serials))
            stats["dns_restarts"] = float(self.dns_restarts)
        return stats

    # Metrics ---------------------------------------------------------------------------------

    def _metrics_view(self) -> NodeView:
        """What the node's metrics read of the agent at each scrape (from the scrape's
        thread: copies of the agent's state, never waiting on its loop)."""

        def revisions() -> dict[str, int | None]:
            desired, serving = self.desired, self.serving
            return {
                "received": desired.revision if desired else None,
                "served": serving.revision if serving else None,
            }

        def counts() -> dict[str, int]:
            serving = self.serving
            return {"sites": len(serving.sites) if serving else 0, "zones": len(self.dns_serials)}

        return NodeView(
            backends=self.health.report,
            revisions=revisions,
            restarts=lambda: {"nginx": self.nginx_restarts, "dns": self.dns_restarts},
            bundles=lambda: {site: r.state for site, r in self.bundles.report_models().items()},
            healthy=lambda: self._healthy,
            counts=counts,
        )

    def _local_ports(self) -> dict[str, int]:
        """The ports of the node's own services, which belong on loopback (the control
        plane's surface scan flags them when they answer on the node's address)."""
        process = getattr(self.dns, "process", None)
        front = getattr(process, "front", None)
        ports = {
            "metrics": self.metrics_server.port if self.metrics_server is not None else None,
            "dns_api": getattr(process, "api_port", None),
            "dns_backend": getattr(process, "backend_port", None) if front else None,
            "dns_console": getattr(front, "console_port", None),
        }
        return {k: int(v) for k, v in ports.items() if isinstance(v, int) and v > 0}

    def _dns_metrics_url(self) -> str | None:
        port = getattr(getattr(self.dns, "process", None), "api_port", None)
        return f"http://127.0.0.1:{port}/metrics" if port else None

    async def _ack_loop(self) -> None:
        backoff = Backoff()
        while True:
            await self._ack_wanted.wait()
            self._ack_wanted.clear()
            while self._pending_ack is not None and self.node_id is not None:
                ack = self._pending_ack
                try:
                    await self.client.ack(self.node_id, ack)
                except Unreachable:
                    await backoff.sleep()
                    continue
                except Rejected as exc:
                    log.error("ack of revision %d refused: %s", ack.revision, exc)
                else:
                    self._last_ack = ack
                if self._pending_ack is ack:
                    self._pending_ack = None
                backoff.reset()

    # Purges ----------------------------------------------------------------------------------

    def _start_purges(self, tasks: list[PurgeTask]) -> bool:
        """Start the purges not seen yet; re-send acks the control plane has not recorded.
        True when any purge is new."""
        fresh = False
        for task in tasks:
            if task.id in self._purge_tasks:
                continue
            fresh = True
            self._purge_tasks[task.id] = asyncio.create_task(
                self._purge(task), name=f"purge {task.id}"
            )
        return fresh

    async def _purge(self, task: PurgeTask) -> None:
        ack = self._purge_acks.get(task.id)
        if ack is None:
            started = time.perf_counter()
            try:
                count = await asyncio.to_thread(self.engine.purge, task)
                ack = PurgeAck(completed_at=datetime.now(UTC), purged_count=count)
                self.metrics.purges.labels("ok").inc()
            except Exception as exc:
                self.metrics.purges.labels("failed").inc()
                log.exception("purge %s failed", task.id)
                ack = PurgeAck(
                    completed_at=datetime.now(UTC), purged_count=0, error=str(exc)[:2000]
                )
            log.info(
                "purge %s: %d objects removed in %.1f ms",
                task.id,
                ack.purged_count,
                (time.perf_counter() - started) * 1000,
            )
            self._purge_acks[task.id] = ack
            while len(self._purge_acks) > KEEP_PURGE_ACKS:
                self._purge_acks.pop(next(iter(self._purge_acks)))
        backoff = Backoff()
        try:
            while True:
                if self.node_id is None:
                    await self._registered.wait()
                    continue
                try:
                    await self.client.ack_purge(self.node_id, task.id, ack)
                    return
                except Unreachable:
                    await backoff.sleep()
                except Rejected as exc:
                    log.error("ack of purge %s refused: %s", task.id, exc)
                    return
        finally:
            # A purge the control plane lists again is acked again (not purged again).
            self._purge_tasks.pop(task.id, None)

    # Health reports --------------------------------------------------------------------------

    async def _health_report_loop(self) -> None:
        event = self.health.reported_changes
        sent_any = False
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), self.options.health_report_interval_s)
            await asyncio.sleep(0.05)  # gather changes that come together
            event.clear()
            report = self.health.report()
            if self.node_id is None or (not report and not sent_any):
                continue
            try:
                await self.client.report_health(self.node_id, HealthReport(backends=report))
                sent_any = bool(report)
            except ProtocolError as exc:
                log.debug("health report not sent: %s", exc)
                await asyncio.sleep(1)
                event.set()

    # Analytics -------------------------------------------------------------------------------

    async def _analytics_loop(self) -> None:
        # The audit log's matches written before this start were counted by the previous run
        # (or are lost with it): read from its end, as it is now, before anything that may
        # take a while (the GeoIP database) lets requests of this run reach it.
        try:
            waf_from_end = audit_log_path(self.engine.access_log).exists()
            console_from_end = console_log_path(self.engine.access_log).exists()
        except Exception:
            waf_from_end = console_from_end = False
        geoip = self.functions.geoip_db  # --geoip-db, else the packaged database
        invocations = FunctionAggregator(self.metrics.functions)  # function_stats
        console = FunctionConsole()  # the functions' console lines
        console_tailer: LogTailer | None = None
        aggregator = TrafficAggregator(
            await asyncio.to_thread(country_locator, geoip),
            totals=self.metrics.totals,
            bots=self.bots,
            functions=invocations,
        )
        await asyncio.to_thread(self.bots.clear_files)
        samples = AccessSampler(since=time.time())  # access log lines, shipped after them
        tailer: LogTailer | None = None
        waf = WafMatches(self.metrics.waf)  # ModSecurity's audit log (waf_log)
        waf_tailer: LogTailer | None = None
        last_report = time.monotonic()
        mapped: EdgeConfig | None = None  # the config whose backends the aggregator knows
        try:
            while True:
                await asyncio.sleep(1.0)
                desired = self.desired
                if desired is not None and desired is not mapped:
                    aggregator.set_backends(
                        await asyncio.to_thread(
                            backend_map, desired.sites, desired.pools, resolve_host
                        )
                    )
                    self.bots.set_sites(desired.sites)
                    mapped = desired
                    waf.set_sites(desired.sites)
                if tailer is None:
                    try:
                        tailer = LogTailer(self.engine.access_log)
                        audit = audit_log_path(tailer.path)
                        waf_tailer = LogTailer(audit, from_end=waf_from_end)
                        console_tailer = LogTailer(
                            console_log_path(tailer.path), from_end=console_from_end
                        )
                    except Exception:
                        continue
                lines = without_own_checks(
                    await asyncio.to_thread(tailer.read_lines), (self.options.bind,)
                )
                aggregator.add_lines(lines)
                samples.add_lines(lines)
                self.bots.expire(time.time())
                if self.bots.pending():
                    await asyncio.to_thread(self.bots.sync_files)
                aggregator.forget_before(time.time())
                invocations.forget_before(time.time())
                if waf_tailer is not None:
                    await asyncio.to_thread(waf.read, waf_tailer)
                if console_tailer is not None:
                    await asyncio.to_thread(console.read, console_tailer)
                if time.monotonic() - last_report < self.options.analytics_interval_s:
                    continue
                last_report = time.monotonic()
                if self.options.pid_file is not None:
                    await asyncio.to_thread(
                        rotate,
                        tailer.path,
                        self.options.pid_file,
                        self.options.log_rotate_bytes,
                    )
                if waf_tailer is not None:
                    await asyncio.to_thread(
                        truncate_if_large, waf_tailer.path, self.options.log_rotate_bytes
                    )
                # renamed, the runtime reopens it: the console's tailer finishes the old file
                await asyncio.to_thread(self.functions.rotate, self.options.log_rotate_bytes)
                if self.node_id is None:
                    continue
                minutes = aggregator.changed()
                if minutes:
                    try:
                        await self.client.report_analytics(
                            self.node_id, AnalyticsReport(minutes=minutes)
                        )
                    except ProtocolError as exc:
                        log.debug("analytics not sent: %s", exc)
                        aggregator.restore(minutes)
                await samples.ship(self.client, self.node_id)
                await waf.ship(self.client, self.node_id)
                await invocations.ship(self.client, self.node_id)
                await console.ship(self.client, self.node_id)
        finally:
            for opened in (tailer, waf_tailer, console_tailer):
                if opened is not None:
                    opened.close()

    # Uptime checks ---------------------------------------------------------------------------

    async def _uptime_loop(self) -> None:
        """Check the served domains (``node.agent.uptime``), not while an apply runs; state
        changes are reported at once, each hour's totals with the analytics' period."""
        checked: EdgeConfig | None = None
        last_hours = time.monotonic()
        while True:
            await asyncio.sleep(1.0)
            if self._applying is not None:
                continue  # an apply has the node's CPU (and nginx reloads): check after it
            serving = self.serving
            if serving is not None and serving is not checked:
                self.uptime.update(targets_of(serving))
                checked = serving
            await self.uptime.run_once()
            if self.node_id is None:
                continue
            hours = []
            if time.monotonic() - last_hours >= self.options.analytics_interval_s:
                hours = self.uptime.take_hours()
                last_hours = time.monotonic()
            changes = self.uptime.take_changes()
            if not changes and not hours:
                continue
            try:
                await self.client.report_uptime(
                    self.node_id, UptimeReport(states=changes, hours=hours)
                )
            except ProtocolError as exc:
                log.debug("uptime not sent: %s", exc)
                self.uptime.give_back(changes)
                self.uptime.give_back_hours(hours)

    # Supervision -----------------------------------------------------------------------------

    async def _supervise_loop(self) -> None:
        while True:
            await asyncio.sleep(self.options.supervise_interval_s)
            problems: list[str] = []
            if self.dns is not None and self._dns_applied is not None:
                try:
                    if await asyncio.to_thread(self.dns.ensure_running):
                        self.dns_restarts += 1
                        log.warning("the DNS server was not running: restarted")
                except Exception as exc:
                    problems.append(f"DNS server down: {exc}")
            if self.serving is not None:
                problem = await self._supervise_nginx()
                if problem:
                    problems.append(problem)
            try:
                if await asyncio.to_thread(self.functions.ensure_running):
                    log.warning("the edge function runtime was not running: restarted")
            except Exception as exc:
                problems.append(f"function runtime down: {exc}")
            healthy = not problems
            if healthy != self._healthy:
                self._healthy = healthy
                self._unhealthy_reason = "; ".join(problems) or None
                self._heartbeat_now.set()

    async def _supervise_nginx(self) -> str | None:
        try:
            restarted = await asyncio.to_thread(self.engine.ensure_running)
        except Exception as exc:
            # Most often: the workers of a master that was killed still hold the ports.
            ports = [p for p in (self.options.http_port, self.options.https_port) if p]
            if not await asyncio.to_thread(kill_orphan_workers, ports):
                log.error("nginx could not be restarted: %s", exc)
            return f"nginx down: {exc}"
        if restarted:
            self.nginx_restarts += 1
            log.warning("nginx was not running: restarted (%d so far)", self.nginx_restarts)
        return None


async def _watch_parent(parent_pid: int, stop: asyncio.Event, interval_s: float) -> None:
    """The fallback of the parent-death signal (``edgeplane.node.lifeline``)."""
    while not stop.is_set():
        if parent_gone(parent_pid):
            log.info("the process that started this agent (pid %d) is gone: stopping", parent_pid)
            stop.set()
            return
        await asyncio.sleep(interval_s)


async def run_until_signalled(
    agent: Agent, *, parent_pid: int | None = None, parent_check_s: float = 0.5
) -> None:
    """Run ``agent`` until SIGINT / SIGTERM, or with ``parent_pid`` until that process (our
    parent) ends. SIGUSR2 writes every thread's stack to stderr (from C, so even when the
    event loop is stuck): what an operator needs when a node hangs."""
    faulthandler.register(signal.SIGUSR2, all_threads=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info("edge agent %s (pid %d) starting", agent.options.name, os.getpid())
    watch = None
    if parent_pid is not None:
        watch = asyncio.create_task(_watch_parent(parent_pid, stop, parent_check_s))
    try:
        await agent.run(stop)
    finally:
        if watch is not None:
            await cancel_all([watch])
