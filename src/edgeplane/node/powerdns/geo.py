"""The node's geo answers in C++: PowerDNS's geoip backend kept in step with the snapshot.

:class:`GeoDnsEngine` is the node's :class:`DnsEngine` plus, after every apply of the zones,
:meth:`GeoDnsEngine.apply_geo` with the snapshot's ``EdgeConfig.geo``. A worker thread then

1. makes sure the ranking database of the node's GeoIP database (``--geoip-db``, else the
   packaged GeoLite2-City) for the snapshot's region table is built (``routing.georank``:
   about 10-40 s here, once per database and region table, kept in a cache directory shared
   by the nodes of a machine) and in place as the process's ``ranks.mmdb``;
2. renders the zones file (``geozones.render``) and, when it changed, writes it and asks
   PowerDNS to ``rediscover`` (the geoip backend reads its zones file and databases again).

Until both are in place (a first start, a new region), the zones file holds nothing and the
LUA records answer: slower, and from every addressed node (they know nothing of liveness,
which ``EdgeConfig.geo`` carries). Later snapshots coalesce: only the newest is
rendered. The geoip backend lists its one domain, the root, among the zones; the engine's
zone listing leaves it out.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from edgeplane.node.lifeline import spawn
from edgeplane.node.powerdns.api import PdnsApi, ZoneInfo
from edgeplane.node.powerdns.engine import DnsEngine
from edgeplane.node.powerdns.geozones import EMPTY, render
from edgeplane.node.powerdns.process import GEO_ZONES, RANKS, PdnsProcess, default_geoip_database
from edgeplane.protocol.config import GeoDnsSpec, ZoneSpec
from edgeplane.routing.georank import RankDatabase, RegionPoint, rank_database

log = logging.getLogger("edgeplane.agent.geo")
STATUS = "geo-status.json"  # GeoStatus of the zones file in place, for people and tests


def default_cache_dir() -> Path:
    """``$EDGEPLANE_GEO_CACHE``, else ``$XDG_CACHE_HOME/edgeplane/georank`` (``~/.cache``)."""
    explicit = os.environ.get("EDGEPLANE_GEO_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "edgeplane" / "georank"


class _Api(PdnsApi):
    def list_zones(self) -> list[ZoneInfo]:
        return [z for z in super().list_zones() if z.name != "."]  # the geoip backend's


@dataclass
class GeoStatus:
    services: int = 0  # proxied names the geoip backend answers
    left_to_lua: int = 0
    build_s: float | None = None  # the last ranking database build (None: from the cache)
    reload_ms: float | None = None  # the last rediscover
    zones_bytes: int = 0
    zones_sha: str = ""  # sha256 of the zones file in place (read by PowerDNS)
    error: str | None = None
    generation: int = 0  # zones files put in place


Zones = Iterable[ZoneSpec] | Callable[[], Iterable[ZoneSpec]]


def _start_build(args: list[str]) -> subprocess.Popen[bytes]:
    """The ranking build's process: it dies with the agent (a stopping agent does not wait for
    a build of several seconds, and leaves none behind)."""
    return spawn(
        args, death_signal=signal.SIGKILL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


class GeoDnsEngine(DnsEngine):
    def __init__(self, process: PdnsProcess, *, cache_dir: Path | None = None) -> None:
        super().__init__(process)
        self.cache_dir = cache_dir or default_cache_dir()
        self.status = GeoStatus()
        self._cv = threading.Condition()
        self._wanted: tuple[Zones, GeoDnsSpec] | None = None
        self._stopping = False
        self._worker: threading.Thread | None = None
        self._ranks: tuple[tuple[RegionPoint, ...], RankDatabase] | None = None
        self._written: str | None = None

    @property
    def api(self) -> PdnsApi:
        target = (self.process.api_url, self.process.api_key)
        if self._api is None or self._api_for != target:
            if self._api is not None:
                self._api.close()
            self._api, self._api_for = _Api(*target), target
        return self._api

    def apply_geo(self, zones: Zones, geo: GeoDnsSpec) -> None:
        """Serve ``zones``' proxied names from the geoip backend (in the background).

        ``zones`` may be a function returning them: the agent holds zones by reference, and
        reading 10,000 of them from its object store belongs in this worker, not its loop."""
        with self._cv:
            self._wanted = (zones, geo)
            if self._worker is None:
                self._worker = threading.Thread(target=self._run, name="geo", daemon=True)
                self._worker.start()
            self._cv.notify()

    def wait_idle(self, timeout: float) -> bool:
        """True once the newest wanted state is served (tests and benches)."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while self._wanted is not None or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cv.wait(left)
        return True

    _busy = False
    _build: subprocess.Popen[bytes] | None = None  # the ranking build in progress

    def _start_build(self, args: list[str]) -> subprocess.Popen[bytes]:
        self._build = _start_build(args)
        return self._build

    def stop(self) -> None:
        with self._cv:
            self._stopping = True
            self._cv.notify_all()
        build = self._build
        if build is not None and build.poll() is None:
            build.kill()  # a stop does not wait for a ranking build (rebuilt at the next start)
        worker = self._worker
        if worker is not None:
            worker.join(timeout=2)
        super().stop()

    # ------------------------------------------------------------------ worker

    def _run(self) -> None:
        while True:
            with self._cv:
                while self._wanted is None and not self._stopping:
                    self._cv.wait()
                if self._stopping:
                    return
                zones, geo = self._wanted  # type: ignore[misc]
                self._wanted = None
                self._busy = True
            try:
                self._serve(zones() if callable(zones) else zones, geo)
                self.status.error = None
            except Exception as exc:  # keep serving (the LUA records answer)
                if self._stopping:  # the stop killed the ranking build
                    return
                log.exception("geo answers not updated")
                self.status.error = str(exc)
            finally:
                with self._cv:
                    self._busy = False
                    self._cv.notify_all()

    def _serve(self, zones: Iterable[ZoneSpec], geo: GeoDnsSpec) -> None:
        regions = tuple(RegionPoint(r.code, r.latitude, r.longitude) for r in geo.regions)
        if (self._ranks is None or self._ranks[0] != regions) and regions:
            # Lua answers while the ranking database is built (it may take a while).
            self._put(EMPTY)
            source = self.process.geoip_database or default_geoip_database()
            ranks = rank_database(source, regions, self.cache_dir, self._start_build)
            self._install(ranks.path)
            self.status.build_s = ranks.build_s
            self._ranks = (regions, ranks)
            self._written = None  # the databases changed: read them again
        if self._ranks is None:
            self._put(EMPTY)
            return
        out = render(zones, geo, self._ranks[1].rankings)
        self.status.services, self.status.left_to_lua = out.services, out.left_to_lua
        self._put(out.text)

    def _install(self, built: Path) -> None:
        target = self.process.directory / RANKS
        tmp = target.with_name(f".{RANKS}.tmp")
        shutil.copyfile(built, tmp)
        os.replace(tmp, target)

    def _put(self, text: str) -> None:
        if text == self._written:
            return
        path = self.process.directory / GEO_ZONES
        tmp = path.with_name(f".{GEO_ZONES}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
        self._rediscover()
        self._written = text
        self.status.zones_bytes = len(text)
        self.status.zones_sha = hashlib.sha256(text.encode()).hexdigest()
        self.status.generation += 1
        status = self.process.directory / STATUS
        status.with_name(f".{STATUS}.tmp").write_text(json.dumps(asdict(self.status)))
        os.replace(status.with_name(f".{STATUS}.tmp"), status)

    def _rediscover(self) -> None:
        if not self.process.running():
            return  # it reads the files when it starts
        d = str(self.process.directory)
        started = time.monotonic()
        r = subprocess.run(
            ["pdns_control", f"--config-dir={d}", f"--socket-dir={d}", "rediscover"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if r.returncode != 0:
            log.warning("pdns_control rediscover: %s", (r.stdout + r.stderr).strip())
        # The geo answers of every zone may have changed: dnsdist's cache is emptied.
        self.process.purge()
        self.status.reload_ms = round((time.monotonic() - started) * 1000, 1)
