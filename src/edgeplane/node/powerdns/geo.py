"""The node's geo answers in C++: PowerDNS's geoip backend kept in step with the snapshot.

:class:`GeoDnsEngine` is the node's :class:`DnsEngine` plus, after every apply of the zones,
:meth:`GeoDnsEngine.apply_geo` with the snapshot's ``EdgeConfig.geo``. A worker thread then

1. makes sure the ranking database of the node's GeoIP database (``--geoip-db``, else the
   packaged GeoLite2-City) for the snapshot's region table is built (``routing.georank``:
   about 2 s here per region table, 14 s for a machine's first, which decodes the database
   once for all; kept in a cache directory shared by the nodes of a machine) and in place as
   the process's ``ranks.mmdb``;
2. renders the zones file (``geozones.render``) and, when it changed, writes it and asks
   PowerDNS to ``rediscover`` (the geoip backend reads its zones file and databases again).

The agent gives the zones by reference (:meth:`GeoDnsEngine.apply_geo_refs`): each zone's
``geo_view`` is kept by hash (a zone nested with another: its ``full_view``, see
``geozones.Nesting``), so one new zone among 10,000 is one zone read (the agent read all
10,000 from its object store for every apply: 1-2 s of CPU beside its DNS apply, and still
did whenever one zone lay inside another, such as customers' zones under a SaaS's own). A
rediscover makes every query the geoip backend is asked, and every API call on a zone, wait
while it reads the file (1-1.7 s at 10,000 zones here): so new zones alone, which their LUA
records answer meanwhile with the same answers, wait for a quiet moment (``ADD_QUIET_S``
without an apply, at most ``ADD_MAX_S``); a change or removal of what the file holds is put in
place at once, and a change that leaves a zone's view as it was writes nothing.

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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from edgeplane.node.lifeline import spawn
from edgeplane.node.powerdns.api import PdnsApi, ZoneInfo
from edgeplane.node.powerdns.engine import DnsEngine
from edgeplane.node.powerdns.geozones import (
    EMPTY,
    Nesting,
    Shared,
    View,
    full_view,
    geo_view,
    norm,
    render,
    render_views,
)
from edgeplane.node.powerdns.process import (
    GEO_ZONES,
    RANKS,
    PdnsError,
    PdnsProcess,
    default_geoip_database,
)
from edgeplane.node.powerdns.zone_names import ByName, by_name
from edgeplane.protocol.config import GeoDnsSpec, ZoneSpec
from edgeplane.routing.georank import RankDatabase, RegionPoint, rank_database

log = logging.getLogger("edgeplane.agent.geo")
# New zones wait to be added to the zones file until no apply came for ADD_QUIET_S seconds,
# or ADD_MAX_S after the first of them: their LUA records answer meanwhile (the same answers),
# and every rediscover makes every query PowerDNS's geoip backend is asked wait while it reads
# the file (about 1 s at 10,000 zones here), an apply of the next zone included.
ADD_QUIET_S = 5.0
ADD_MAX_S = 120.0
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
    waiting: int = 0  # new zones answered by their LUA records until the next zones file
    loaded: int = 0  # zones read by the last update (by reference: the new and changed ones)


Zones = Iterable[ZoneSpec] | Callable[[], Iterable[ZoneSpec]]


@dataclass(frozen=True)
class _Refs:
    """Zones by reference (zone name -> hash of its ``ZoneSpec``) and how to read one."""

    refs: Mapping[str, str]
    load: Callable[[str], ZoneSpec]


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
        self._wanted: tuple[Zones | _Refs, GeoDnsSpec] | None = None
        # By reference: each zone's view by hash, the zones the file in place was rendered
        # from (None: unknown, render everything) and the new zones waiting for the next file.
        # A nested zone's view is its full_view (see geozones.Nesting), kept apart.
        self._views: dict[str, View] = {}
        self._full: dict[str, View] = {}
        self._share = Shared()  # one copy of equal values among them (see Shared)
        # The refs the views were last made for, by name as ``norm`` spells it.
        self._seen: ByName | None = None
        self._nesting = Nesting()
        self._shown_nested: frozenset[str] = frozenset()  # nested zones when the file was made
        self._norms: dict[str, str] = {}  # zone name -> as norm spells it
        self._shown: dict[str, str] | None = None
        self._shown_geo: GeoDnsSpec | None = None
        self._deferred: tuple[_Refs, GeoDnsSpec] | None = None
        self._deferred_since = 0.0
        self._due = 0.0
        self._hurry = False
        self._stopping = False
        self._worker: threading.Thread | None = None
        self._ranks: tuple[tuple[RegionPoint, ...], RankDatabase] | None = None
        self._written: str | None = None  # the sha-256 of the zones file in place

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

    def apply_geo_refs(
        self, refs: Mapping[str, str], load: Callable[[str], ZoneSpec], geo: GeoDnsSpec
    ) -> None:
        """``apply_geo`` by reference (zone name -> hash, ``load`` reads a hash): only the
        zones new or changed since the last call are read, and when the only change is new
        zones, the zones file waits for a quiet moment (``ADD_QUIET_S``, at most
        ``ADD_MAX_S``): their LUA records answer meanwhile, the same answers. A change or
        removal of a zone the file holds is put in place at once."""
        with self._cv:
            self._wanted = (_Refs(dict(refs), load), geo)
            if self._worker is None:
                self._worker = threading.Thread(target=self._run, name="geo", daemon=True)
                self._worker.start()
            self._cv.notify()

    def wait_idle(self, timeout: float) -> bool:
        """True once the newest wanted state is served, new zones waiting for a quiet moment
        included (tests and benches)."""
        deadline = time.monotonic() + timeout
        with self._cv:
            while self._wanted is not None or self._busy or self._deferred is not None:
                self._hurry = True  # the new zones waiting for a quiet moment: now
                self._cv.notify_all()
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cv.wait(left)
        return True

    _busy = False
    _build: subprocess.Popen[bytes] | None = None  # the ranking build in progress

    def _start_build(self, args: list[str]) -> subprocess.Popen[bytes]:
        with self._cv:  # never one after the stop has looked for it
            if self._stopping:
                raise RuntimeError("the engine is stopping: no ranking build")
            self._build = _start_build(args)
            return self._build

    def stop(self) -> None:
        """Stop at once: a ranking build in progress is killed (built again at the next
        start), and the worker is not waited for. Whatever it was doing (reading rankings,
        putting a file in place by rename) fails or ends against a stopped server, and it
        returns without a word."""
        with self._cv:
            self._stopping = True
            self._cv.notify_all()
            build = self._build
        if build is not None and build.poll() is None:
            build.kill()
        super().stop()

    # ------------------------------------------------------------------ worker

    def _due_now(self) -> bool:
        return self._deferred is not None and (self._hurry or time.monotonic() >= self._due)

    def _run(self) -> None:
        while True:
            with self._cv:
                while self._wanted is None and not self._stopping and not self._due_now():
                    wait = None if self._deferred is None else self._due - time.monotonic()
                    self._cv.wait(wait)
                if self._stopping:
                    return
                now = self._wanted is None  # else the deferred new zones are due
                zones, geo = self._wanted or self._deferred  # type: ignore[misc]
                self._wanted = None
                self._busy = True
            try:
                if isinstance(zones, _Refs):
                    self._serve_refs(zones, geo, now=now)
                else:
                    self._serve(zones() if callable(zones) else zones, geo)
                self.status.error = None
            except LookupError as exc:
                # A zone of these refs left the agent's object store meanwhile: a newer
                # snapshot replaced it (the store keeps the objects of the snapshots it
                # serves), and its refs come next. The LUA records answer meanwhile.
                log.warning("geo answers not updated: %s (a newer snapshot follows)", exc)
                self.status.error = str(exc)
            except Exception as exc:  # keep serving (the LUA records answer)
                if self._stopping:  # the stop killed the ranking build
                    return
                log.exception("geo answers not updated")
                self.status.error = str(exc)
            finally:
                with self._cv:
                    self._busy = False
                    if self._deferred is None:
                        self._hurry = False
                    self._cv.notify_all()

    def _serve_refs(self, want: _Refs, geo: GeoDnsSpec, *, now: bool) -> None:
        """The zones file from the zones' views, each read once per hash; new zones alone
        wait (see ``apply_geo_refs``); ``now``: they waited enough."""
        if not self._ranks_ready(geo):
            self._shown = None
            return
        refs = want.refs
        todo, named = self._nest(refs)
        self._seen = None  # until every view is had: a zone not to be had means all again
        nested = self._nesting.nested
        loaded = 0
        for name in todo:
            digest = refs[name]
            if self._norm(name) in nested:
                if digest not in self._full:
                    self._full[digest] = full_view(want.load(digest), self._share)
                    loaded += 1
            elif digest not in self._views:
                self._views[digest] = geo_view(want.load(digest), self._share)
                loaded += 1
        self._seen = named
        if loaded or not now:  # (the new zones' own update counted them)
            self.status.loaded = loaded
        shown = self._shown
        if not now and shown is not None and self._shown_geo == geo:
            change, waiting = self._change(shown, refs)
            if change == "none":  # the file says the same of these zones
                with self._cv:
                    self._deferred = None
                self._shown, self._shown_nested = dict(refs), frozenset(nested)
                self.status.waiting = 0
                self._prune(refs, None)
                return
            if change == "new":
                with self._cv:
                    wait = not self._hurry
                    if wait:
                        if self._deferred is None:
                            self._deferred_since = time.monotonic()
                        self._deferred = (want, geo)
                        self._due = min(
                            self._deferred_since + ADD_MAX_S, time.monotonic() + ADD_QUIET_S
                        )
                if wait:
                    self.status.waiting = waiting
                    self._prune(refs, shown)
                    return
        assert self._ranks is not None
        views = (self._view(n, h) for n, h in refs.items())
        out = render_views(views, geo, self._ranks[1].rankings)
        with self._cv:
            self._deferred = None
        self.status.services, self.status.left_to_lua = out.services, out.left_to_lua
        self._put(out.text)
        self._shown, self._shown_geo = dict(refs), geo
        self._shown_nested = frozenset(nested)
        self.status.waiting = 0
        self._prune(refs, None)

    def _norm(self, name: str) -> str:
        spelled = self._norms.get(name)
        if spelled is None:
            if len(self._norms) >= 1 << 18:
                self._norms.clear()
            spelled = self._norms[name] = norm(name)
        return spelled

    def _view(self, name: str, digest: str) -> View:
        """The view of zone ``name`` at ``digest`` (loaded by ``_serve_refs``)."""
        if self._norm(name) in self._nesting.nested:
            return self._full[digest]
        return self._views[digest]

    def _change(self, shown: Mapping[str, str], refs: Mapping[str, str]) -> tuple[str, int]:
        """What the zones file in place (rendered from ``shown``) lacks for ``refs``: "file"
        (a zone it holds changed or went, or which zones are nested changed: now), "new"
        (only zones it holds nothing of, which their LUA records answer meanwhile), or
        "none"; and how many zones it lacks that way."""
        flipped = self._nesting.nested.symmetric_difference(self._shown_nested)
        if flipped and any(self._norm(name) in flipped for name in shown):
            return "file", 0  # a zone the file holds became nested, or stopped being
        view = self._view
        differ = {name for name, _ in shown.items() ^ refs.items()}  # the others: the same
        for name in differ:
            digest = shown.get(name)
            new = refs.get(name)
            was = view(name, digest) if digest is not None else ()
            if was and (new is None or view(name, new) != was):
                return "file", 0
        new_zones = 0
        for name in differ:
            digest = refs.get(name)
            old = shown.get(name)
            if digest is not None and view(name, digest) and (old is None or not view(name, old)):
                new_zones += 1
        return ("new" if new_zones else "none"), new_zones

    def _prune(self, refs: Mapping[str, str], shown: Mapping[str, str] | None) -> None:
        """Forget the views of the zones neither wanted nor in the file (a hash names one
        zone's content: a view kept in the table its zone's nesting no longer reads is
        never read, and goes when the zone changes)."""
        keep = set(refs.values()).union((shown or {}).values())
        for table in (self._views, self._full):
            for digest in table.keys() - keep:
                del table[digest]
        if len(self._share.table) > 2 * self._share.floor + 4096:  # values of views gone
            self._share.rebuild([*self._views.values(), *self._full.values()])

    def _nest(self, refs: Mapping[str, str]) -> tuple[Iterable[str], ByName]:
        """Tell the nesting which zones are served; the names whose views may be missing
        (those added or changed since the last call and those whose nesting changed; all of
        them when ``by_name`` cannot tell) and ``refs`` by name."""
        named, changed = by_name(refs, self._norm, self._seen)
        before = frozenset(self._nesting.nested)
        self._nesting.update(frozenset(named.zones))
        if changed is None:
            return refs.keys(), named
        flipped = before.symmetric_difference(self._nesting.nested)
        if flipped:  # rare: a zone became nested, or stopped being
            changed += [n for n in refs if self._norm(n) in flipped]
        return changed, named

    def _ranks_ready(self, geo: GeoDnsSpec) -> bool:
        """The ranking database of ``geo``'s regions in place (built if need be); False (and
        an empty zones file) when there are no regions."""
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
            self._shown = None
        if self._ranks is None:
            self._put(EMPTY)
            return False
        return True

    def _serve(self, zones: Iterable[ZoneSpec], geo: GeoDnsSpec) -> None:
        """The zones file from every zone (read whole)."""
        with self._cv:
            self._deferred = None
        self._shown = None
        self.status.waiting = 0
        if not self._ranks_ready(geo):
            return
        assert self._ranks is not None
        out = render(zones, geo, self._ranks[1].rankings)
        self.status.services, self.status.left_to_lua = out.services, out.left_to_lua
        self._put(out.text)

    def _install(self, built: Path) -> None:
        target = self.process.directory / RANKS
        tmp = target.with_name(f".{RANKS}.tmp")
        shutil.copyfile(built, tmp)
        os.replace(tmp, target)

    def _put(self, text: str) -> None:
        digest = hashlib.sha256(text.encode()).hexdigest()  # not the text: megabytes kept
        if digest == self._written:
            return
        path = self.process.directory / GEO_ZONES
        tmp = path.with_name(f".{GEO_ZONES}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
        self._rediscover()
        self._written = digest
        self.status.zones_bytes = len(text)
        self.status.zones_sha = digest
        self.status.generation += 1
        status = self.process.directory / STATUS
        status.with_name(f".{STATUS}.tmp").write_text(json.dumps(asdict(self.status)))
        os.replace(status.with_name(f".{STATUS}.tmp"), status)

    def _rediscover(self) -> None:
        if not self.process.running():
            return  # it reads the files when it starts
        started = time.monotonic()
        try:
            self.process.rediscover()
        except PdnsError as exc:
            log.warning("%s", exc)
        # The geo answers of every zone may have changed: dnsdist's cache is emptied.
        self.process.purge()
        self.status.reload_ms = round((time.monotonic() - started) * 1000, 1)
