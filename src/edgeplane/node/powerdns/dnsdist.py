"""dnsdist in front of the node's PowerDNS: a packet cache keyed by the client's subnet.

PowerDNS 4.7 never packet-caches an answer that depends on the client (an ECS scope: every
geo answer), so every geo query went through its backends. dnsdist (Debian ``dnsdist``, 1.7)
listens on the node's DNS addresses and port and forwards to PowerDNS on a loopback port:

- ``useClientSubnet``: a query without ECS gets the client's address as ECS (/32, /128: the
  whole address, as PowerDNS used it when it was asked directly and as ``route_request``
  does), and that option is taken out of the answer again; a query with ECS (a resolver's)
  is passed on as it came;
- the packet cache (``parseECS``) keys an answer by its query, ECS option included, and
  compares the subnet on a hit; an answer with scope 0 (every answer that does not depend on
  the client) is kept once for every client (the "zero scope" of dnsdist);
- an entry lives at most ``MAX_TTL`` seconds (PowerDNS's own ``cache-ttl``), answers keep
  their TTL (``dontAge``), and the agent empties the cache of a zone after every change of it
  and the whole cache after the geoip backend reads new answers (``purge``), through the
  console (a control socket on loopback, with a key of its own): a change is answered as soon
  as before. dnsdist removes entries only by walking its whole cache, so a big cache is not
  walked: every query goes to one of two pools (the same PowerDNS, a cache each) by one rule,
  and a purge switches the rule to the other pool's emptied cache (``WALK_LIMIT``).

The console speaks dnsdist's own protocol (libsodium's ``crypto_secretbox``, which the Debian
package depends on) from this process: a purge costs a loopback round trip, not a process.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import ctypes.util
import ipaddress
import os
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import dns.exception
import dns.message
import dns.query

from edgeplane.node.lifeline import spawn, terminate
from edgeplane.node.procfs import cmdline

CONF = "dnsdist.conf"
LOG = "dnsdist.log"
PID_FILE = "dnsdist.pid"  # written by us: dnsdist in the foreground writes none
PACKAGE = "dnsdist"
MAX_TTL = 10  # seconds an answer may stay cached: PowerDNS's cache-ttl
CACHE_ENTRIES = 500_000  # answers kept (one per name, type and client network)
# Emptying the cache of a zone walks every entry (expungeByName: about 0.3-1 us an entry
# here, 200 ms at 200,000 entries; expunge(0) of everything the same). So there are two
# caches, one per pool ("a", "b", the same PowerDNS in both) and one rule sends every query
# to the active one: a purge walks the zones' entries while zones x entries stays under
# WALK_LIMIT, else it switches the rule to the other pool, whose cache was emptied after its
# last switch (setRules is atomic in dnsdist), and empties the old one afterwards, in the
# background. Replacing a pool's cache object instead (setCache) is a data race in 1.7.
WALK_LIMIT = 50_000
POOLS = ("a", "b")
ECS_PREFIX_V4 = 32
ECS_PREFIX_V6 = 128


class DnsdistError(Exception):
    """dnsdist is missing, did not start, or its console refused; the message says why."""


def find_binary(binary: str = "dnsdist") -> str:
    found = shutil.which(binary)
    if found is None:
        raise DnsdistError(
            f"{binary} not found: the node's DNS runs dnsdist in front of PowerDNS; install the "
            f"Debian package {PACKAGE} (scripts/bootstrap does)"
        )
    return found


def _endpoint(address: str, port: int) -> str:
    return (
        f"[{address}]:{port}" if ipaddress.ip_address(address).version == 6 else f"{address}:{port}"
    )


def _lua(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _new_cache(entries: int) -> str:
    return (
        f"newPacketCache({entries}, {{maxTTL={MAX_TTL}, minTTL=0, temporaryFailureTTL=0, "
        f"maxNegativeTTL={MAX_TTL}, staleTTL=0, dontAge=true, parseECS=true, numberOfShards=8}})"
    )


def render_conf(
    *,
    local_addresses: Sequence[str],
    port: int,
    backend: tuple[str, int],
    console_port: int,
    key: bytes,
    listeners: int = 1,
    cache_entries: int = CACHE_ENTRIES,
) -> str:
    """dnsdist.conf (Lua): the node's addresses, PowerDNS behind, the cache, the console."""
    lines = [
        "-- written by the Edgeplane agent (edgeplane.node.powerdns.dnsdist)",
        'setSecurityPollSuffix("")',  # no outbound queries
        "setConsoleConnectionsLogging(false)",
        f"controlSocket({_lua(_endpoint('127.0.0.1', console_port))})",
        f"setKey({_lua(base64.b64encode(key).decode())})",
        # an authoritative server answers everyone (dnsdist's default ACL: private ranges)
        'setACL({"0.0.0.0/0", "::/0"})',
        f"setECSSourcePrefixV4({ECS_PREFIX_V4})",
        f"setECSSourcePrefixV6({ECS_PREFIX_V6})",
        "setECSOverride(false)",  # a resolver's ECS is kept
        "setRingBuffersSize(1000, 4)",
    ]
    # SO_REUSEPORT only for several listeners on one address: it would also let a second
    # dnsdist (another node's, a stale one) share the port instead of failing to start.
    reuse = "true" if listeners > 1 else "false"
    first = True
    for address in local_addresses:
        for _ in range(max(1, listeners)):
            call = "setLocal" if first else "addLocal"
            lines.append(f"{call}({_lua(_endpoint(address, port))}, {{reusePort={reuse}}})")
            first = False
    lines += [
        "local pdns = newServer({address="
        + _lua(_endpoint(*backend))
        + ', name="pdns", pool={"a", "b"}, useClientSubnet=true, disableZeroScope=false})',
        "pdns:setUp()",  # one backend, on loopback: no health-check queries
        f'getPool("a"):setCache({_new_cache(cache_entries)})',
        f'getPool("b"):setCache({_new_cache(cache_entries)})',
        'active = "a"',  # a global of the console's Lua: the pool the rule sends queries to
        'setRules({newRuleAction(AllRule(), PoolAction("a"))})',
    ]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------- console

_NONCE = 24
_MAC = 16


class _Sodium:
    def __init__(self) -> None:
        name = ctypes.util.find_library("sodium") or "libsodium.so.23"
        try:
            self.lib = ctypes.CDLL(name)
        except OSError as exc:
            raise DnsdistError(
                f"libsodium not found ({exc}): install the Debian package {PACKAGE}"
            ) from exc
        if self.lib.sodium_init() < 0:
            raise DnsdistError("libsodium did not initialise")

    def seal(self, message: bytes, nonce: bytes, key: bytes) -> bytes:
        out = ctypes.create_string_buffer(len(message) + _MAC)
        self.lib.crypto_secretbox_easy(out, message, ctypes.c_ulonglong(len(message)), nonce, key)
        return out.raw

    def open(self, box: bytes, nonce: bytes, key: bytes) -> bytes:
        out = ctypes.create_string_buffer(max(1, len(box) - _MAC))
        if self.lib.crypto_secretbox_open_easy(out, box, ctypes.c_ulonglong(len(box)), nonce, key):
            raise DnsdistError("the dnsdist console's answer did not decrypt (another key?)")
        return out.raw[: len(box) - _MAC]


_sodium: _Sodium | None = None


def _box() -> _Sodium:
    global _sodium
    if _sodium is None:
        _sodium = _Sodium()
    return _sodium


def _recv(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise DnsdistError("the dnsdist console closed the connection")
        data += chunk
    return data


def _next(nonce: bytearray) -> None:
    """dnsdist's SodiumNonce::increment: the first four bytes, big endian, plus one."""
    count = (struct.unpack(">I", nonce[:4])[0] + 1) & 0xFFFFFFFF
    nonce[:4] = struct.pack(">I", count)


def console(port: int, key: bytes, commands: Sequence[str], timeout: float = 5.0) -> list[str]:
    """Run Lua ``commands`` on dnsdist's console at 127.0.0.1:``port``; their output each."""
    box = _box()
    ours = secrets.token_bytes(_NONCE)
    half = _NONCE // 2
    out: list[str] = []
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(ours)
            theirs = _recv(sock, _NONCE)
            reading = bytearray(ours[:half] + theirs[half:])
            writing = bytearray(theirs[:half] + ours[half:])
            for command in commands:
                sealed = box.seal(command.encode(), bytes(writing), key)
                _next(writing)
                sock.sendall(struct.pack(">I", len(sealed)) + sealed)
                (size,) = struct.unpack(">I", _recv(sock, 4))
                answer = box.open(_recv(sock, size), bytes(reading), key)
                _next(reading)
                out.append(answer.decode("utf-8", "replace"))
    except OSError as exc:
        raise DnsdistError(f"dnsdist console at 127.0.0.1:{port}: {exc}") from exc
    return out


def purge_commands(zones: Iterable[str] | None) -> list[str]:
    """The console command that empties the cache of ``zones`` (their names and every name
    below), or of everything (None). It answers "walked" (the zones' entries were removed
    from the active cache) or "switched <old pool>": the other pool's empty cache answers
    from now on and the old pool's is to be emptied (``drain_command``)."""
    names = None if zones is None else sorted(set(zones))
    if names == []:
        return []
    switch = (
        'local old = active local new = (old == "a") and "b" or "a" '
        "getPool(new):getCache():expunge(0) "  # what went in after it was emptied: little
        "setRules({newRuleAction(AllRule(), PoolAction(new))}) "
        'active = new return "switched " .. old'
    )
    if names is None:
        return [switch]
    walk = " ".join(f"c:expungeByName(newDNSName({_lua(n)}), DNSQType.ANY, true)" for n in names)
    return [
        "local c = getPool(active):getCache() "
        f'if c:getStats()["entries"] * {len(names)} <= {WALK_LIMIT} then '
        f'{walk} return "walked" end {switch}'
    ]


def drain_command(pool: str) -> str:
    """Empty the cache of ``pool`` (no longer the active one)."""
    if pool not in POOLS:
        raise ValueError(f"no pool {pool!r}")
    return f"getPool({_lua(pool)}):getCache():expunge(0)"


# ---------------------------------------------------------------------------------- process


class DnsdistProcess:
    """One ``dnsdist`` under ``directory`` (beside PowerDNS's files), on fixed ports."""

    def __init__(
        self,
        directory: Path,
        *,
        local_addresses: Sequence[str],
        port: int,
        backend: tuple[str, int],
        console_port: int,
        binary: str = "dnsdist",
        listeners: int = 1,
    ) -> None:
        self.directory = directory.absolute()
        self.local_addresses = tuple(local_addresses)
        self.port = port
        self.backend = backend
        self.console_port = console_port
        self.binary = binary
        self.listeners = listeners
        self.key = secrets.token_bytes(32)
        self._child: subprocess.Popen[bytes] | None = None
        self._log_offset = 0
        self.interrupted = threading.Event()  # set: a start in progress gives up (PdnsProcess)
        self.purges = 0
        self.purge_ms = 0.0  # the last purge, console round trip included
        self.purged = ""  # how: "walked" (the zones' entries) or "replaced" (everything)

    @property
    def conf(self) -> Path:
        return self.directory / CONF

    @property
    def log(self) -> Path:
        return self.directory / LOG

    @property
    def pid(self) -> int | None:
        return self._child.pid if self.running() and self._child is not None else None

    def running(self) -> bool:
        return self._child is not None and self._child.poll() is None

    def _prepare(self) -> str:
        binary = find_binary(self.binary)
        self.directory.mkdir(parents=True, exist_ok=True)
        conf = render_conf(
            local_addresses=self.local_addresses,
            port=self.port,
            backend=self.backend,
            console_port=self.console_port,
            key=self.key,
            listeners=self.listeners,
        )
        tmp = self.conf.with_name(f".{CONF}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # holds the key
        with os.fdopen(fd, "w") as f:
            f.write(conf)
        os.rename(tmp, self.conf)
        return binary

    def stop_stale(self) -> None:
        """A dnsdist of this directory left by a previous agent holds our ports: stop it."""
        try:
            pid = int((self.directory / PID_FILE).read_text().strip())
        except (OSError, ValueError):
            return
        cmd = cmdline(pid)
        if not cmd or "dnsdist" not in os.path.basename(cmd[0]) or str(self.conf) not in cmd:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10.0
        while cmdline(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

    def start(self, timeout: float = 30.0) -> None:
        """Spawn dnsdist and return once it answers DNS (PowerDNS should run already)."""
        if self.running():
            return
        if self.interrupted.is_set():
            raise DnsdistError("dnsdist is stopping")
        binary = self._prepare()
        self.stop_stale()
        self._log_offset = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as out:
            self._child = spawn(
                [binary, "--supervised", "--disable-syslog", "-C", str(self.conf)],
                death_signal=signal.SIGTERM,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=self.directory,
            )
        (self.directory / PID_FILE).write_text(f"{self._child.pid}\n")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            child = self._child
            if child is None or self.interrupted.is_set():
                raise DnsdistError("dnsdist was stopped while it started")
            if child.poll() is not None:
                self._child = None
                raise DnsdistError(
                    f"dnsdist exited with status {child.returncode}:\n{self.log_tail()}"
                )
            # The console comes up after the listening sockets are bound: another process
            # answering on our port (a clash) does not pass for us.
            if self._console_answers() and self._answers():
                return
            time.sleep(0.05)
        self.stop()
        raise DnsdistError(
            f"dnsdist started but did not answer within {timeout:.0f}s:\n{self.log_tail()}"
        )

    def _console_answers(self) -> bool:
        try:
            self.console("showVersion()")
        except DnsdistError:
            return False
        return True

    def _answers(self) -> bool:
        address = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(
            self.local_addresses[0], self.local_addresses[0]
        )
        query = dns.message.make_query(".", "SOA")
        try:
            # Short: the start polls it again, and a stop waits for the probe in progress.
            dns.query.udp(query, address, port=self.port, timeout=0.2)
        except (dns.exception.DNSException, OSError):
            return False
        return True

    def log_tail(self, size: int = 4096) -> str:
        try:
            with self.log.open("rb") as f:
                f.seek(max(self._log_offset, f.seek(0, os.SEEK_END) - size))
                return f.read().decode("utf-8", "replace").strip()
        except OSError:
            return ""

    def stop(self, timeout: float = 5.0) -> None:
        child, self._child = self._child, None
        if child is None:
            return
        terminate(child, timeout)

    def console(self, *commands: str) -> list[str]:
        return console(self.console_port, self.key, commands)

    def purge(self, zones: Iterable[str] | None = None) -> None:
        """Empty the cache of ``zones`` (names and below), or all of it; nothing when dnsdist
        is not running (it starts with an empty cache)."""
        if not self.running():
            return
        commands = purge_commands(zones)
        if not commands:
            return
        started = time.monotonic()
        (how,) = self.console(*commands)
        self.purges += 1
        self.purge_ms = round((time.monotonic() - started) * 1000, 2)
        self.purged = how = how.strip()
        if how.startswith("switched "):
            # The old pool's cache is emptied off the caller's path (its answers are no
            # longer served); the next switch empties what is left, if anything.
            threading.Thread(
                target=self._drain, args=(how.split()[1],), name="dnsdist-drain", daemon=True
            ).start()

    def _drain(self, pool: str) -> None:
        with contextlib.suppress(DnsdistError):
            self.console(drain_command(pool))

    def cache_stats(self) -> dict[str, int]:
        """hits and misses of both caches, entries of the active one (figures, tests)."""
        (text,) = self.console(
            'local a = getPool("a"):getCache():getStats() '
            'local b = getPool("b"):getCache():getStats() '
            "local c = getPool(active):getCache():getStats() "
            'return (a["hits"] + b["hits"]) .. " " .. (a["misses"] + b["misses"]) .. " " '
            '.. c["entries"]'
        )
        hits, misses, entries = (int(x) for x in text.split())
        return {"hits": hits, "misses": misses, "entries": entries}
