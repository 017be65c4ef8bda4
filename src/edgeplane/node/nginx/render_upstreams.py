"""Upstream blocks: one per pool, health state rendered as ``down``, and the proxy profiles.

Algorithms: ``round_robin`` and ``weighted`` are nginx's weighted round robin; ``least_conn`` is
nginx's; ``dynamic`` is ``least_conn`` with the weights the agent measured (``LocalHealth.weights``,
falling back to the configured weights); ``ip_hash`` is nginx's (sticky per client /24). nginx
refuses ``backup`` with ``ip_hash``, so for that algorithm backups are rendered ``down`` while any
primary is in rotation, and take over (primaries ``down``) when every primary is out.

``in_rotation`` reads a rendered ``upstreams.conf`` back: which backends of which pools it
serves (a ``server`` line without ``down``). The agent asks it of the release nginx runs, so
that what a restart finds in rotation stays there (``node.agent.health``).
"""

from __future__ import annotations

from dataclasses import dataclass

from edgeplane.node.nginx.local import LocalHealth
from edgeplane.node.nginx.render_origin_tls import origin_tls_lines, tls_suffix
from edgeplane.node.nginx.syntax import block, safe_name, seconds
from edgeplane.protocol.config import BackendSpec, PoolSpec

PASSIVE = "max_fails=1 fail_timeout=10s"
KEEPALIVE = 16
POOL_NOTE = "# pool "  # the comment before each pool's upstream block: "# pool <id> (<algorithm>)"


def upstream_name(pool_id: str) -> str:
    return safe_name("p", pool_id)


def pool_scheme(pool: PoolSpec) -> str:
    return "https" if pool.backends and all(b.scheme == "https" for b in pool.backends) else "http"


@dataclass(frozen=True, order=True)
class ProxyProfile:
    """Proxy settings that take no variables, so each distinct set needs locations of its own.
    ``tls``: the lines of a pool's TLS to its origins (``render_origin_tls``), none for most."""

    connect_ms: int
    read_ms: int
    tries: int
    tls: tuple[str, ...] = ()

    @staticmethod
    def of(pool: PoolSpec) -> ProxyProfile:
        """``retries`` more tries on the next backend; with backup backends, enough tries to
        get past every primary (a refused connection is always safe to retry), so that the
        backup answers when every primary is dead."""
        tries = pool.retries + 1
        if any(b.backup for b in pool.backends):
            tries = max(tries, sum(not b.backup for b in pool.backends) + 1)
        return ProxyProfile(
            round(pool.connect_timeout_s * 1000),
            round(pool.read_timeout_s * 1000),
            tries,
            origin_tls_lines(pool.tls) if pool.tls is not None else (),
        )

    @property
    def name(self) -> str:
        base = f"c{self.connect_ms}r{self.read_ms}n{self.tries}"
        return base + tls_suffix(self.tls) if self.tls else base

    def lines(self) -> list[str]:
        return [
            f"proxy_connect_timeout {seconds(self.connect_ms / 1000)};",
            f"proxy_read_timeout {seconds(self.read_ms / 1000)};",
            f"proxy_send_timeout {seconds(self.read_ms / 1000)};",
            f"proxy_next_upstream_tries {self.tries};",
            *self.tls,
        ]


def _address(backend: BackendSpec) -> str:
    host = f"[{backend.host}]" if ":" in backend.host else backend.host
    return f"{host}:{backend.port}"


def _out(pool: PoolSpec, backend: BackendSpec, health: LocalHealth) -> bool:
    return backend.state != "active" or (pool.id, backend.key) in health.down


def render_upstream(pool: PoolSpec, health: LocalHealth) -> str:
    lines: list[str] = []
    if pool.algorithm in ("least_conn", "dynamic"):
        lines.append("least_conn;")
    elif pool.algorithm == "ip_hash":
        lines.append("ip_hash;")
    primaries_in = any(not b.backup and not _out(pool, b, health) for b in pool.backends)
    for b in pool.backends:
        weight = b.weight
        if pool.algorithm == "dynamic":
            weight = max(1, min(1000, health.weights.get((pool.id, b.key), b.weight)))
        params = [f"weight={weight}", PASSIVE]
        down = _out(pool, b, health)
        if pool.algorithm == "ip_hash":
            # agent-side failover: backups only while every primary is out
            down = down or (b.backup and primaries_in)
        elif b.backup:
            params.append("backup")
        if down:
            params.append("down")
        note = "".join(c for c in b.key if c.isprintable())
        lines.append(f"server {_address(b)} {' '.join(params)};  # {note}")
    if not pool.backends:
        lines.append("server 127.0.0.1:9 down;  # no backends")
    lines.append(f"keepalive {KEEPALIVE};")
    return f"{POOL_NOTE}{pool.id} ({pool.algorithm})\n" + block(
        f"upstream {upstream_name(pool.id)}", lines
    )


def in_rotation(upstreams: str) -> frozenset[tuple[str, str]]:
    """(pool id, backend key) of every backend ``upstreams`` (a rendered ``upstreams.conf``)
    serves in rotation. A key with characters the note leaves out is not found (its backend
    counts as out of rotation)."""
    found: set[tuple[str, str]] = set()
    pool: str | None = None
    for line in upstreams.splitlines():
        if line.startswith(POOL_NOTE):
            pool = line[len(POOL_NOTE) :].rsplit(" (", 1)[0]
        elif line.startswith("}"):
            pool = None
        elif pool is not None and line.lstrip().startswith("server "):
            directive, sep, note = line.partition(";  # ")
            if sep and "down" not in directive.split()[2:]:
                found.add((pool, note))
    return frozenset(found)
