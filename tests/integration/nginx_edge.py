"""Helpers for data-plane tests: a real nginx driven by ``NginxEngine`` from hand-built
snapshots on free loopback ports, and HTTP clients (optionally bound to a source address)."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from origins import Origin
from processes import free_port

from edgeplane.node.nginx.engine import ApplyResult, NginxEngine
from edgeplane.node.nginx.local import LocalHealth, NodeLocal, find_js_module
from edgeplane.protocol.config import BackendSpec, EdgeConfig, NodeSpec, PoolSpec, SiteSpec


def backend(origin: Origin, **kw: Any) -> BackendSpec:
    return BackendSpec(key=origin.name, host="127.0.0.1", port=origin.port, **kw)


def pool(
    pool_id: str, *backends: BackendSpec, algorithm: str = "round_robin", **kw: Any
) -> PoolSpec:
    return PoolSpec(id=pool_id, algorithm=algorithm, backends=backends, **kw)  # type: ignore[arg-type]


def edge_config(
    sites: list[SiteSpec], pools: list[PoolSpec], certs: tuple[Any, ...] = (), revision: int = 1
) -> EdgeConfig:
    return EdgeConfig(
        revision=revision,
        node=NodeSpec(id="n1", name="edge-1", region="local"),
        sites=tuple(sites),
        pools=tuple(pools),
        certs=certs,
    )


@dataclass
class Edge:
    engine: NginxEngine
    local: NodeLocal
    base: Path
    clients: list[httpx.Client] = field(default_factory=list)

    def apply(self, config: EdgeConfig, health: LocalHealth | None = None) -> ApplyResult:
        result = self.engine.apply(config, health or LocalHealth())
        assert result.ok, result.error
        return result

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.local.http_port}"

    def client(self, source: str | None = None, **kw: Any) -> httpx.Client:
        transport = httpx.HTTPTransport(local_address=source) if source else None
        c = httpx.Client(base_url=self.http, transport=transport, timeout=15, **kw)
        self.clients.append(c)
        return c

    def get(
        self, host: str, path: str, client: httpx.Client | None = None, **kw: Any
    ) -> httpx.Response:
        """GET through the edge; retries once when a keep-alive connection was closed by a
        reload (old workers close idle connections while shutting down)."""
        c = client or self.client()
        headers = {"Host": host, **kw.pop("headers", {})}
        try:
            return c.get(path, headers=headers, **kw)
        except httpx.RemoteProtocolError:
            return c.get(path, headers=headers, **kw)

    def close(self) -> None:
        for c in self.clients:
            c.close()
        self.engine.stop()
        shutil.rmtree(self.base, ignore_errors=True)


def make_base() -> Path:
    """A directory nginx workers (www-data when root) can reach."""
    base = Path(tempfile.mkdtemp(prefix="edgeplane-edge-"))
    base.chmod(0o755)
    return base


@contextlib.contextmanager
def running_edge(name: str = "edge-1", *, https: bool = True) -> Iterator[Edge]:
    base = make_base()
    local = NodeLocal(
        prefix=base / "nginx",
        node_name=name,
        http_port=free_port(),
        https_port=free_port() if https else None,
        js_module=find_js_module(),
    )
    edge = Edge(NginxEngine(local), local, base)
    try:
        yield edge
    finally:
        edge.close()


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
