"""Several "hosts" on this one machine: Linux network namespaces joined to the root namespace
by veth pairs, for tests that need edge nodes with addresses of their own.

``with hosts(3) as (a, b, c):`` creates, for each host, a namespace ``ep-PID-I``, a veth pair
(root side ``vNNNNNI-a``, namespace side ``vNNNNNI-b``, NNNNN being PID % 100000; the root side
carries the namespace's name as its alias), a free /24 of 10.251.0.0/16 (``gateway`` = .1 on
the root side, ``address`` = .2 inside), both ends and the namespace's ``lo`` up, and a default
route inside the namespace via the gateway. Everything is removed on the way out, whatever
happens (exceptions, failed assertions, KeyboardInterrupt): processes still inside the
namespace are killed, the namespace and the root-side veth deleted. Namespaces and veths of the
same prefix left by runs whose process is gone (a crashed or killed pytest) are removed, with
what still runs in them, on the next entry (``cleanup_stale``).

What is reachable (checked by test_netns_hosts.py):

- root namespace -> ``host.address``: yes (the gateway's connected route).
- root namespace ``127.0.0.1`` -> a server in a host: no, and a host's ``127.0.0.1`` is its own
  ``lo``, not the root's: each host has a loopback of its own, and every port is free in it.
- host -> ``host.gateway`` and every other root-namespace address (the other hosts' gateways,
  the machine's own addresses): yes, without any forwarding, since these are local addresses
  of the root namespace. A server in the root namespace meant for the hosts therefore listens
  on one of the gateways (e.g. ``hosts[0].gateway``), not on 127.0.0.1; binding that rather
  than 0.0.0.0 keeps it off the machine's real interfaces.
- host -> another host's ``address``: no by default (the root namespace does not forward:
  the connection times out). Yes with ``hosts(..., forward=True)``, which enables IPv4
  forwarding on the root-side veths alone (``net.ipv4.conf.<veth>.forwarding``, gone with the
  veth), leaving ``net.ipv4.ip_forward`` and the machine's real interfaces as they are, so
  there is no global setting to change or restore. Two policy rules per veth
  (``ip rule``: priority 25100 forwards what it receives to the 10.251/16 subnets, the
  default route suppressed; 25101 makes everything else unreachable) keep a host's other
  traffic (its resolver's DNS queries, say) from being forwarded out of the machine with a
  10.251 source: it fails at once with "Network is unreachable" (or, the root namespace
  rate-limiting its ICMP errors, times out when repeated at once).
- host -> anything outside the machine: no (dropped in the root namespace). There is no DNS
  inside a host either: anything that resolves names there (``socket.getfqdn``, which
  ``python -m http.server --bind ADDRESS`` calls) waits for its resolver's timeouts.
- ``tc netem`` is not available here (see /work/shared/TESTING.md): no simulated latency.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

POOL = ipaddress.IPv4Network("10.251.0.0/16")
LOCK = Path("/run/lock/edgeplane-netns.lock")
# Policy rules for forward=True: what arrives on a root-side veth is forwarded to the pool's
# connected subnets (the default route suppressed), everything else is unreachable.
RULE_POOL, RULE_DENY = 25100, 25101
VETH = re.compile(r"v\d{6,}-a")


@dataclass
class Host:
    name: str  # the namespace's name
    address: str  # the host's own address, inside the namespace
    gateway: str  # the root-namespace side of its veth
    veth: str = ""  # the root-side veth
    peer: str = ""  # the namespace-side veth

    @property
    def exec_prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.name]

    def run(self, *cmd: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        """``cmd`` inside the host (``subprocess.run`` semantics, with the output captured as
        text and a 60 s timeout unless told otherwise)."""
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        kw.setdefault("timeout", 60)
        return subprocess.run([*self.exec_prefix, *cmd], **kw)

    def popen(self, *cmd: str, **kw: Any) -> subprocess.Popen[Any]:
        """``cmd`` started inside the host (``ip netns exec`` execs it: the pid is ``cmd``'s)."""
        return subprocess.Popen([*self.exec_prefix, *cmd], **kw)

    def pids(self) -> list[int]:
        """Processes running inside the host's namespace."""
        return _netns_pids(self.name)


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and r.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {r.stderr.strip() or r.returncode}")
    return r


def _netns_pids(name: str) -> list[int]:
    r = _ip("netns", "pids", name, check=False)
    return [int(p) for p in r.stdout.split() if p.isdigit()] if r.returncode == 0 else []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _namespaces() -> list[str]:
    r = _ip("netns", "list", check=False)
    return [line.split()[0] for line in r.stdout.splitlines() if line.strip()]


def _root_links() -> dict[str, str]:
    """Root-namespace links: name -> alias ("" when none)."""
    r = _ip("-o", "link", "show", check=False)
    links: dict[str, str] = {}
    for line in r.stdout.splitlines():
        m = re.match(r"\d+:\s+([^:@\s]+)", line)
        if m:
            alias = re.search(r"\balias (\S+)", line)
            links[m.group(1)] = alias.group(1) if alias else ""
    return links


def _forward_rules(veth: str) -> list[list[str]]:
    return [
        f"priority {RULE_POOL} iif {veth} to {POOL} lookup main suppress_prefixlength 0".split(),
        f"priority {RULE_DENY} iif {veth} unreachable".split(),
    ]


def _remove_rules(veth: str) -> None:
    for rule in _forward_rules(veth):
        for _ in range(10):  # each call deletes one copy; none left: an error
            if _ip("rule", "del", *rule, check=False).returncode != 0:
                break


def _remove(namespace: str, veth: str | None) -> None:
    """The namespace (after killing what still runs in it), the root-side veth and its policy
    rules, if any."""
    for pid in _netns_pids(namespace):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    if namespace in _namespaces():
        _ip("netns", "del", namespace, check=False)
    # Deleting the namespace deletes the pair, unless a process still holds the namespace;
    # deleting the root side removes both ends in any case.
    if veth and veth in _root_links():
        _ip("link", "del", veth, check=False)
    if veth:
        _remove_rules(veth)


def cleanup_stale(prefix: str = "ep") -> list[str]:
    """Remove namespaces ``PREFIX-PID-I`` (and root-side veths labelled with such a name) whose
    PID is no longer alive: what crashed earlier runs left behind. Returns what it removed."""
    pattern = re.compile(rf"{re.escape(prefix)}-(\d+)-(\d+)")
    removed = []
    for name in _namespaces():
        m = pattern.fullmatch(name)
        if m and not _alive(int(m.group(1))):
            _remove(name, None)
            removed.append(name)
    for link, alias in _root_links().items():
        m = pattern.fullmatch(alias)
        if m and not _alive(int(m.group(1))):
            _ip("link", "del", link, check=False)
            removed.append(link)
    # Policy rules whose veth is gone (their ``iif`` shows as detached).
    rules = _ip("rule", "show", check=False).stdout
    for veth in sorted(set(re.findall(rf"iif ({VETH.pattern}) \[detached\]", rules))):
        _remove_rules(veth)
        removed.append(f"rules of {veth}")
    return removed


def _used_networks() -> list[ipaddress.IPv4Network]:
    """IPv4 networks of the root namespace's addresses and routes that overlap the pool."""
    text = _ip("-4", "-o", "addr", "show", check=False).stdout
    text += _ip("-4", "-o", "route", "show", "table", "all", check=False).stdout
    used = []
    for token in text.split():
        if not token[:1].isdigit():
            continue
        try:
            net = ipaddress.ip_network(token, strict=False)
        except ValueError:
            continue
        # Broader routes (10.0.0.0/8 and the like) are shadowed by the more specific /24.
        if isinstance(net, ipaddress.IPv4Network) and net.prefixlen >= 16 and net.overlaps(POOL):
            used.append(net)
    return used


def _free_subnet(taken: list[ipaddress.IPv4Network]) -> ipaddress.IPv4Network:
    subnets = list(POOL.subnets(new_prefix=24))
    start = os.getpid() % len(subnets)  # concurrent runs start their search apart
    for k in range(len(subnets)):
        net = subnets[(start + k) % len(subnets)]
        if not any(net.overlaps(t) for t in taken):
            return net
    raise RuntimeError(f"no free /24 left in {POOL}")


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "no `ip` command (iproute2)"
    r = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    if r.returncode != 0:
        return f"`ip netns` is not available: {r.stderr.strip()}"
    return None


@contextlib.contextmanager
def _lock() -> Iterator[None]:
    """Serializes the choice of subnets between concurrent runs on this machine."""
    path = LOCK if LOCK.parent.is_dir() else Path("/tmp") / LOCK.name
    with path.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _create(host: Host, subnet: ipaddress.IPv4Network, forward: bool) -> None:
    _ip("netns", "add", host.name)
    # The peer is created inside the namespace at once: no moment with both ends in the root.
    _ip("link", "add", host.veth, "type", "veth", "peer", "name", host.peer, "netns", host.name)
    _ip("link", "set", "dev", host.veth, "alias", host.name)
    _ip("addr", "add", f"{host.gateway}/{subnet.prefixlen}", "dev", host.veth)
    if forward:
        for rule in _forward_rules(host.veth):
            _ip("rule", "add", *rule)
        Path(f"/proc/sys/net/ipv4/conf/{host.veth}/forwarding").write_text("1\n")
    _ip("link", "set", "dev", host.veth, "up")
    ns = ("-n", host.name)
    _ip(*ns, "addr", "add", f"{host.address}/{subnet.prefixlen}", "dev", host.peer)
    _ip(*ns, "link", "set", "dev", host.peer, "up")
    _ip(*ns, "link", "set", "dev", "lo", "up")
    _ip(*ns, "route", "add", "default", "via", host.gateway)


@contextlib.contextmanager
def hosts(count: int, prefix: str = "ep", *, forward: bool = False) -> Iterator[list[Host]]:
    """``count`` hosts (see the module's docstring); skips the test when namespaces cannot be
    made here (not root, no ``ip netns``). ``forward``: hosts also reach each other's
    addresses."""
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    cleanup_stale(prefix)
    pid = os.getpid()
    made: list[Host] = []
    try:
        with _lock():
            taken = _used_networks()
            for i in range(count):
                subnet = _free_subnet(taken)
                taken.append(subnet)
                tag = f"v{pid % 100000:05d}{i}"  # interface names: at most 15 characters
                host = Host(
                    name=f"{prefix}-{pid}-{i}",
                    address=str(subnet.network_address + 2),
                    gateway=str(subnet.network_address + 1),
                    veth=f"{tag}-a",
                    peer=f"{tag}-b",
                )
                made.append(host)  # before creating it: a half-made host is removed too
                try:
                    _create(host, subnet, forward)
                except RuntimeError as exc:
                    if i == 0 and "Operation not permitted" in str(exc):
                        pytest.skip(f"network namespaces cannot be made here: {exc}")
                    raise
        yield made
    finally:
        for host in reversed(made):
            _remove(host.name, host.veth)


def leftovers(made: list[Host]) -> list[str]:
    """Namespaces, root-side veths and policy rules of ``made`` that still exist (for tests of
    the cleanup)."""
    names, links = set(_namespaces()), set(_root_links())
    rules = _ip("rule", "show", check=False).stdout
    return (
        [h.name for h in made if h.name in names]
        + [h.veth for h in made if h.veth in links]
        + [f"rules of {h.veth}" for h in made if f"iif {h.veth} " in rules]
    )
