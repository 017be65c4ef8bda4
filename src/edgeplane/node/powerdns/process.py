"""A ``pdns_server`` of our own: its config dir, its SQLite database, start, watch and stop.

Everything lives in one directory: ``pdns.conf``, the ``gsqlite3`` database (kept across
restarts: the zones survive), the control socket, the pid file and the server's output
(``pdns.log``). The agent runs one for the node's authoritative DNS; tests run throwaway ones.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import httpx

from edgeplane.node.lifeline import spawn, terminate
from edgeplane.node.powerdns.dnsdist import DnsdistError, DnsdistProcess
from edgeplane.node.powerdns.geozones import EMPTY
from edgeplane.node.procfs import cmdline
from edgeplane.routing.geoip import GeoDatabaseError, _packaged_database
from edgeplane.routing.georank import empty_database

SCHEMA_FILES = (
    Path("/usr/share/doc/pdns-backend-sqlite3/schema.sqlite3.sql"),
    Path("/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql"),
)
CONF = "pdns.conf"
DATABASE = "pdns.sqlite3"
GEO_ZONES = "geo.yaml"  # the geoip backend's zones (edgeplane.node.powerdns.geozones)
RANKS = "ranks.mmdb"  # its GeoIP database of nearest regions (edgeplane.routing.georank)
LOG = "pdns.log"
PID_FILE = "pdns.pid"  # written by pdns_server itself into --socket-dir


def _write(path: Path, content: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(content)
    os.replace(tmp, path)


class PdnsError(Exception):
    """pdns_server could not be set up or did not start; the message says why."""


def schema_file() -> Path:
    """The SQLite schema shipped by the Debian package ``pdns-backend-sqlite3``."""
    for path in SCHEMA_FILES:
        if path.is_file():
            return path
    raise PdnsError(
        "the PowerDNS SQLite schema is missing (looked for "
        + ", ".join(str(p) for p in SCHEMA_FILES)
        + "): install the Debian package pdns-backend-sqlite3"
    )


def default_geoip_database() -> Path:
    """GeoLite2-City from the ``maxminddb-geolite2`` package (coordinates, IPv4 and IPv6)."""
    try:
        return _packaged_database()
    except GeoDatabaseError as exc:
        raise PdnsError(str(exc)) from exc


def _bindable(family: int, kind: int, address: str, port: int) -> bool:
    with socket.socket(family, kind) as s:
        try:
            s.bind((address, port))
        except OSError:
            return False
    return True


def _family(address: str) -> int:
    return socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET


def free_port(addresses: Sequence[str] = ("127.0.0.1",), *, udp: bool = False) -> int:
    """A port free for TCP (and with ``udp`` for UDP too) on every one of ``addresses``."""
    first = addresses[0]
    for _ in range(100):
        with socket.socket(_family(first), socket.SOCK_STREAM) as s:
            s.bind((first, 0))
            port = int(s.getsockname()[1])
        kinds = (socket.SOCK_STREAM, socket.SOCK_DGRAM) if udp else (socket.SOCK_STREAM,)
        if all(_bindable(_family(a), k, a, port) for a in addresses for k in kinds):
            return port
    raise PdnsError(f"no free port on {', '.join(addresses)}")


def _another_port(*taken: int, udp: bool = False) -> int:
    """A free loopback port other than ``taken`` (ports picked free but not bound yet)."""
    for _ in range(100):
        port = free_port(udp=udp)
        if port not in taken:
            return port
    raise PdnsError("no free port on 127.0.0.1")


def _probe_address(address: str) -> str:
    """Where to query a server listening on ``address`` (a wildcard answers on loopback)."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(address, address)


def render_conf(
    *,
    database: Path,
    geoip_database: Path,
    local_addresses: Sequence[str],
    dns_port: int,
    api_port: int,
    api_key: str,
    threads: int,
    resolver: str | None = None,
    geo_zones: Path | None = None,
    ranks: Path | None = None,
) -> str:
    """pdns.conf: SQLite with DNSSEC, the GeoIP backend for LUA, the API on loopback only;
    with ``resolver`` ("host:port"), ALIAS records are expanded through it.

    With ``geo_zones`` and ``ranks``, the geoip backend comes first and answers the proxied
    names of ``geo_zones`` (see ``edgeplane.node.powerdns.geozones``) with ``ranks`` (read
    first, then ``geoip_database``); backends are asked for the type wanted
    (``consistent-backends=no``: a zone's names live in two backends)."""
    geo = geo_zones is not None and ranks is not None
    lines = {
        "launch": "geoip,gsqlite3" if geo else "gsqlite3,geoip",
        "gsqlite3-database": str(database),
        "gsqlite3-dnssec": "yes",
        "geoip-database-files": (f"{ranks}," if geo else "") + str(geoip_database),
        "local-address": ", ".join(local_addresses),
        "local-port": str(dns_port),
        "api": "yes",
        "api-key": api_key,
        "webserver": "yes",
        "webserver-address": "127.0.0.1",
        "webserver-port": str(api_port),
        "webserver-allow-from": "127.0.0.0/8,::1/128",
        "webserver-loglevel": "none",
        "default-api-rectify": "yes",
        "security-poll-suffix": "",  # no outbound queries
        "enable-lua-records": "yes",
        "edns-subnet-processing": "yes",
        "default-ttl": "30",
        # The packet cache (cleared by every API change) answers repeated questions; the
        # backend query caches are off: they are not cleared when a zone is created, and a
        # name asked just before its zone existed stayed unanswered for their TTL.
        "cache-ttl": "10",
        "negquery-cache-ttl": "0",
        "query-cache-ttl": "0",
        # No zone cache: which zone a name is in is asked of the database (an indexed lookup;
        # uncached geo answers measured as fast as with the cache), so a zone the agent
        # writes by SQL is served at once, with no ``rediscover`` (which makes the geoip
        # backend read its file again, 1-2 s at 10,000 zones with every query waiting) and
        # no concurrent zone cache rebuilds (PowerDNS/pdns#11416 aborts the server).
        "zone-cache-refresh-interval": "0",
        "receiver-threads": "1",
        "distributor-threads": str(threads),
        "signing-threads": str(threads),
        "disable-syslog": "yes",
        "loglevel": "4",
    }
    if geo:
        lines["geoip-zones-file"] = str(geo_zones)
        lines["consistent-backends"] = "no"
    if resolver:
        lines["resolver"] = resolver
        lines["expand-alias"] = "yes"
    return "".join(f"{key}={value}\n" for key, value in lines.items())


class PdnsProcess:
    """One ``pdns_server`` under ``directory``; ports 0 pick free ones (kept across restarts)."""

    def __init__(
        self,
        directory: Path,
        *,
        local_addresses: Sequence[str] = ("127.0.0.1",),
        dns_port: int = 0,
        api_port: int = 0,
        api_key: str | None = None,
        geoip_database: Path | None = None,
        binary: str = "pdns_server",
        threads: int = 2,
        resolver: str | None = None,
        front: bool = True,
        backend_port: int = 0,
        console_port: int = 0,
    ) -> None:
        if not local_addresses:
            raise ValueError("PdnsProcess needs at least one local address")
        for address in local_addresses:
            ipaddress.ip_address(address)  # ValueError on a typo, before pdns says it obscurely
        self.directory = directory.absolute()
        self.local_addresses = tuple(local_addresses)
        self._auto_dns_port = dns_port == 0
        self._auto_backend_port = backend_port == 0
        self._auto_api_port = api_port == 0
        self.dns_port = dns_port or free_port(self.local_addresses, udp=True)
        self.api_port = api_port or free_port()
        # With ``front`` (the node's way), dnsdist answers on ``dns_port`` and PowerDNS on
        # ``backend_port`` on loopback (``edgeplane.node.powerdns.dnsdist``).
        self.front: DnsdistProcess | None = None
        self.backend_port = self.dns_port
        if front:
            self.backend_port = backend_port or _another_port(
                self.dns_port, self.api_port, udp=True
            )
            self.front = DnsdistProcess(
                self.directory,
                local_addresses=self.local_addresses,
                port=self.dns_port,
                backend=("127.0.0.1", self.backend_port),
                console_port=console_port
                or _another_port(self.dns_port, self.api_port, self.backend_port),
            )
        self.api_key = api_key or secrets.token_urlsafe(24)
        self.geoip_database = geoip_database
        self.binary = binary
        self.threads = threads
        self.resolver = resolver
        self._child: subprocess.Popen[bytes] | None = None
        # Set by ``interrupt``: a start in progress (another thread) gives up at once; shared
        # with the dnsdist front, whose start gives up with it.
        self.interrupted = threading.Event()
        if self.front is not None:
            self.front.interrupted = self.interrupted
        self._log_offset = 0
        self._rediscovering = threading.Lock()  # one rediscover at a time (see rediscover)
        self._rediscover_started: float | None = None  # the one running (monotonic)
        self._rediscover_total = 0.0  # seconds of the ones done

    # ------------------------------------------------------------------ where things are

    @property
    def conf(self) -> Path:
        return self.directory / CONF

    @property
    def database(self) -> Path:
        return self.directory / DATABASE

    @property
    def log(self) -> Path:
        return self.directory / LOG

    @property
    def api_url(self) -> str:
        """Base URL of the HTTP API (``…/api/v1``)."""
        return f"http://127.0.0.1:{self.api_port}/api/v1"

    @property
    def dns_address(self) -> str:
        """The address to query this server on."""
        return _probe_address(self.local_addresses[0])

    @property
    def backend_addresses(self) -> tuple[str, ...]:
        """Where PowerDNS itself listens: the node's addresses, or loopback behind dnsdist."""
        return ("127.0.0.1",) if self.front is not None else self.local_addresses

    @property
    def backend_address(self) -> str:
        """The address to query PowerDNS on directly (behind dnsdist: on ``backend_port``)."""
        return _probe_address(self.backend_addresses[0])

    @property
    def pid(self) -> int | None:
        """PowerDNS's pid (its zones: the engine's trust); dnsdist's is ``front.pid``."""
        return self._child.pid if self._pdns_running() and self._child is not None else None

    def _pdns_running(self) -> bool:
        return self._child is not None and self._child.poll() is None

    def running(self) -> bool:
        """PowerDNS, and dnsdist in front of it, run."""
        return self._pdns_running() and (self.front is None or self.front.running())

    def purge(self, zones: Iterable[str] | None = None) -> None:
        """Empty dnsdist's cache of ``zones`` (their names and below), or all of it: PowerDNS's
        own cache is cleared by its API, dnsdist's by this (a no-op without dnsdist)."""
        if self.front is None:
            return
        try:
            self.front.purge(zones)
        except DnsdistError as exc:
            raise PdnsError(str(exc)) from exc

    def rediscover(self, timeout: float = 120.0) -> float:
        """``pdns_control rediscover``: the backends look again (the geoip backend reads its
        zones file and databases again). One at a time. While the geoip backend reads its file
        (about 1 s for 10,000 zones here), queries it is asked wait. The milliseconds it took;
        PdnsError when PowerDNS did not say Ok (a server not running is not an error: it reads
        everything when it starts)."""
        if not self._pdns_running():
            return 0.0
        d = str(self.directory)
        with self._rediscovering:
            started = self._rediscover_started = time.monotonic()
            try:
                r = subprocess.run(
                    ["pdns_control", f"--config-dir={d}", f"--socket-dir={d}", "rediscover"],
                    capture_output=True,
                    text=True,
                    timeout=timeout,
                )
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise PdnsError(f"pdns_control rediscover: {exc}") from exc
            finally:
                self._rediscover_total += time.monotonic() - started
                self._rediscover_started = None
            took = (time.monotonic() - started) * 1000
        if r.returncode != 0:
            raise PdnsError(f"pdns_control rediscover: {(r.stdout + r.stderr).strip()}")
        return took

    def rediscover_seconds(self) -> float:
        """Seconds this process has spent in rediscovers, the running one up to now: queries
        wait meanwhile, so a check over DNS does not count them against its deadline."""
        started = self._rediscover_started
        running = time.monotonic() - started if started is not None else 0.0
        return self._rediscover_total + running

    def flush(self, zones: Iterable[str] | None = None) -> None:
        """Empty PowerDNS's packet and query caches of ``zones`` (their names and below), or
        of everything: ``pdns_control purge`` (about 6 ms). The API's cache flush does the
        same but costs 40-90 ms beside a geoip backend of 10,000 zones (PowerDNS 4.7's geoip
        backend copies its whole domain at every zone lookup the API makes)."""
        d = str(self.directory)
        names = [] if zones is None else [f"{n.rstrip('.')}.$" for n in zones]
        if zones is not None and not names:
            return
        try:
            r = subprocess.run(
                ["pdns_control", f"--config-dir={d}", f"--socket-dir={d}", "purge", *names],
                capture_output=True,
                text=True,
                timeout=30,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PdnsError(f"pdns_control purge: {exc}") from exc
        if r.returncode != 0:
            raise PdnsError(f"pdns_control purge: {(r.stdout + r.stderr).strip()}")

    # ------------------------------------------------------------------ set up

    def _prepare(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._create_database()
        geoip = self.geoip_database or default_geoip_database()
        if not geoip.is_file():
            raise PdnsError(f"GeoIP database {geoip} does not exist")
        conf = render_conf(
            database=self.database,
            geoip_database=geoip,
            local_addresses=self.backend_addresses,
            dns_port=self.backend_port,
            api_port=self.api_port,
            api_key=self.api_key,
            threads=self.threads,
            resolver=self.resolver,
            geo_zones=self.directory / GEO_ZONES,
            ranks=self.directory / RANKS,
        )
        self._prepare_geo()
        tmp = self.conf.with_name(f".{CONF}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # holds the API key
        with os.fdopen(fd, "w") as f:
            f.write(conf)
        os.rename(tmp, self.conf)

    def _prepare_geo(self) -> None:
        """No geo answers until the node writes them (``node.powerdns.geo``): the LUA records
        answer meanwhile."""
        if not (self.directory / RANKS).is_file():
            _write(self.directory / RANKS, empty_database())
        if not (self.directory / GEO_ZONES).is_file():
            _write(self.directory / GEO_ZONES, EMPTY.encode())

    def ensure_database(self) -> None:
        """The directory and the database (from the schema), if not there yet."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self._create_database()

    def _create_database(self) -> None:
        with contextlib.closing(sqlite3.connect(self.database)) as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
            if "domains" in tables:
                return
            schema = schema_file().read_text()
            db.executescript(schema)
            db.commit()

    def _stop_stale(self) -> None:
        """A server of this directory left by a previous agent holds our ports: stop it."""
        try:
            pid = int((self.directory / PID_FILE).read_text().strip())
        except (OSError, ValueError):
            return
        cmd = cmdline(pid)
        if not cmd or "pdns_server" not in cmd[0] or f"--config-dir={self.directory}" not in cmd:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10.0
        while cmdline(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

    # ------------------------------------------------------------------ run

    def start(self, timeout: float = 30.0) -> None:
        """Spawn the server (and dnsdist in front of it) and return once the API and the DNS
        port answer."""
        if self.running():
            return
        if self.interrupted.is_set():
            raise PdnsError("PowerDNS is stopping")
        if not self._pdns_running():
            self._stop_stale()
            self._start_pdns(timeout)
        if self.front is not None and not self.front.running():
            try:
                self._start_front(timeout)
            except PdnsError:
                self.stop()
                raise

    def _start_front(self, timeout: float) -> None:
        assert self.front is not None
        for attempt in range(3):
            try:
                self.front.start(timeout)
                return
            except DnsdistError as exc:
                in_use = "already in use" in str(exc)
                if attempt == 2 or not in_use or not self._auto_dns_port:
                    raise PdnsError(str(exc)) from exc
            self.dns_port = self.front.port = free_port(self.local_addresses, udp=True)

    def _start_pdns(self, timeout: float) -> None:
        for attempt in range(3):
            self._prepare()
            try:
                self._spawn(timeout)
                return
            except PdnsError:
                in_use = "Address already in use" in self.log_tail()
                auto_dns = self._auto_backend_port if self.front else self._auto_dns_port
                if attempt == 2 or not in_use or not (auto_dns or self._auto_api_port):
                    raise
            # a port picked free was taken before the server bound it: pick again
            if self.front is not None:
                if self._auto_backend_port:
                    self.backend_port = _another_port(self.dns_port, udp=True)
                    self.front.backend = ("127.0.0.1", self.backend_port)
            elif self._auto_dns_port:
                self.dns_port = self.backend_port = free_port(self.local_addresses, udp=True)
            if self._auto_api_port:
                self.api_port = free_port()

    def _spawn(self, timeout: float) -> None:
        self._log_offset = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as out:
            # Ends with the process that started it (the agent), however that ends.
            self._child = spawn(
                [
                    self.binary,
                    "--daemon=no",
                    "--guardian=no",
                    f"--config-dir={self.directory}",
                    f"--socket-dir={self.directory}",
                ],
                death_signal=signal.SIGTERM,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=self.directory,
            )
        deadline = time.monotonic() + timeout
        api_ok = dns_ok = False
        while time.monotonic() < deadline:
            child = self._child
            if child is None or self.interrupted.is_set():
                raise PdnsError("pdns_server was stopped while it started")
            if child.poll() is not None:
                self._child = None
                raise PdnsError(
                    f"pdns_server exited with status {child.returncode}:\n{self.log_tail()}"
                )
            api_ok = api_ok or self._api_answers()
            dns_ok = dns_ok or self._dns_answers()
            if api_ok and dns_ok:
                return
            time.sleep(0.05)
        self.stop()
        waiting = " and ".join(
            what for what, ok in (("the API", api_ok), ("the DNS port", dns_ok)) if not ok
        )
        raise PdnsError(
            f"pdns_server started but {waiting} did not answer within {timeout:.0f}s:\n"
            + self.log_tail()
        )

    def _api_answers(self) -> bool:
        try:
            r = httpx.get(
                f"{self.api_url}/servers/localhost",
                headers={"X-API-Key": self.api_key},
                timeout=1.0,
            )
        except httpx.HTTPError:
            return False
        return r.status_code == 200

    def _dns_answers(self) -> bool:
        query = dns.message.make_query(".", "SOA")
        try:
            # Short: the start polls it again, and a stop waits for the probe in progress.
            dns.query.udp(query, self.backend_address, port=self.backend_port, timeout=0.2)
        except (dns.exception.DNSException, OSError):
            return False
        return True  # any answer (REFUSED for a zone we do not serve) proves it is up

    def log_tail(self, size: int = 4096) -> str:
        """The end of the server's output since the last start."""
        try:
            with self.log.open("rb") as f:
                f.seek(max(self._log_offset, f.seek(0, os.SEEK_END) - size))
                return f.read().decode("utf-8", "replace").strip()
        except OSError:
            return ""

    def interrupt(self) -> None:
        """Stop now, and make a start in progress in another thread give up at once instead
        of waiting for the servers it started to answer (the agent stops); ``stop`` ends it."""
        self.interrupted.set()
        self.stop()

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` (dnsdist first, then PowerDNS)."""
        if self.front is not None:
            self.front.stop(timeout)
        child, self._child = self._child, None
        if child is None:
            return
        terminate(child, timeout)

    def ensure_running(self, timeout: float = 30.0) -> bool:
        """Restart the server if it died; True when it did."""
        if self.running():
            return False
        if not self._pdns_running():
            self.stop()  # reap it (and restart dnsdist: its cache may hold the old answers)
        self.start(timeout)
        return True
