"""Simulated edge nodes for ``bench/edge.py``'s fleet stage: many nodes' share of the edge
protocol, in one process, without nginx or a DNS server.

A simulated node does to the control plane what an agent does
(``edgeplane.node.agent.client`` / ``agent``), minus applying anything:

- registers with an edge token of its own (``POST /api/v1/edge/nodes``), with a region and an
  address (from 198.18.0.0/15, the benchmarking range: GeoDNS answers name them), speaking
  the agent's protocol version (``edgeplane.protocol.versions``, in every call's header);
- long-polls its snapshot with ``refs=true`` and, once it holds a manifest, ``have=<hash>``
  (the answer then a delta, which it applies with the protocol's own
  ``ManifestDelta.apply``), fetches the objects it lacks (``POST .../objects``, 1,000 a call),
  and acknowledges the revision (``POST .../ack``, ``apply_ms`` 0);
- acknowledges the purges a poll hands it (nothing to purge);
- heartbeats every second (``POST .../heartbeat``, healthy), with its zones' serials when they
  changed (as the agent does), starting at a random moment of the second;
- a failed call is counted (``Pollers.failed``) and retried as the agent retries it: the poll,
  the registration and the acknowledgement after an exponential, jittered backoff (the
  agent's own ``Backoff``), a heartbeat at the next interval.

Every node runs as asyncio tasks of one event loop in a thread of the bench's own
(:class:`Pollers`), over one shared ``httpx.AsyncClient`` (each call with its node's token),
so that a bench can run hundreds. The bench's process competes for the same CPUs as the
control plane: a control plane's figures with simulated nodes are an upper bound of what real
nodes elsewhere would cost it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import random
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import BaseModel

from edgeplane.node.agent.client import Backoff
from edgeplane.protocol import versions
from edgeplane.protocol.config import EdgeManifest
from edgeplane.protocol.messages import (
    Ack,
    ConfigPoll,
    Heartbeat,
    NodeRegister,
    ObjectsRequest,
    PurgeAck,
)

BASE = "/api/v1/edge"
POLL_WAIT_S = 25.0  # as ``edgeplane edge``
OBJECTS_BATCH = 1000
ADDRESSES = ipaddress.IPv4Network("198.18.0.0/15")


def address_of(i: int) -> str:
    """The ``i``-th simulated node's address (198.18.0.1, 198.18.0.2, ...)."""
    return str(ADDRESSES.network_address + 1 + i)


@dataclass
class SimNode:
    """One simulated node's identity and what it holds."""

    name: str
    region: str
    token: str
    address: str
    id: str | None = None
    manifest: EdgeManifest | None = None
    have: set[str] = field(default_factory=set)  # object hashes fetched
    serials: dict[str, int] = field(default_factory=dict)  # zone object hash -> serial
    acked: int = -1  # the newest revision acknowledged
    sent_serials: dict[str, int] | None = None  # what the last heartbeat said
    errors: int = 0


class _Refused(Exception):
    pass


class Pollers:
    """Simulated nodes on an event loop of their own (a daemon thread); ``add`` starts more,
    ``close`` stops them all. ``acked(revision)`` counts the nodes that acknowledged it (or a
    newer one)."""

    def __init__(self, url: str, *, heartbeat_s: float = 1.0, poll_wait_s: float = POLL_WAIT_S):
        self.url = url
        self.heartbeat_s = heartbeat_s
        self.poll_wait_s = poll_wait_s
        self.nodes: list[SimNode] = []
        self.calls = 0
        self.failed = 0  # calls that failed (the first 50: ``failures``)
        self.failures: list[str] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._changed = threading.Condition()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._http: httpx.AsyncClient = self._run(self._client())

    # The loop's side --------------------------------------------------------------------

    def _run(self, coro: Coroutine[Any, Any, Any], timeout: float = 120.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    async def _client(self) -> httpx.AsyncClient:
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
        return httpx.AsyncClient(base_url=self.url, timeout=30.0, limits=limits)

    async def _call(
        self,
        node: SimNode,
        method: str,
        path: str,
        body: BaseModel | None = None,
        *,
        params: dict[str, Any] | None = None,
        timeout: float = 30.0,
    ) -> bytes:
        self.calls += 1
        headers = {
            "Authorization": f"Bearer {node.token}",
            versions.HEADER: str(versions.PROTOCOL_VERSION),
        }
        content = None
        if body is not None:
            content = body.model_dump_json().encode()
            headers["Content-Type"] = "application/json"
        r = await self._http.request(
            method,
            f"{BASE}{path}",
            content=content,
            headers=headers,
            params=params,
            timeout=timeout,
        )
        if r.status_code >= 300:
            raise _Refused(f"{method} {path}: {r.status_code} {r.text[:300]}")
        return r.content

    def _note(self, node: SimNode, what: str, exc: Exception) -> None:
        """A failed call, counted (the first 50 kept for the bench to show)."""
        node.errors += 1
        self.failed += 1
        if len(self.failures) < 50:
            self.failures.append(f"{node.name} {what}: {type(exc).__name__}: {exc}"[:400])

    async def _register(self, node: SimNode) -> None:
        """Until it is registered, backing off as the agent does."""
        body = NodeRegister(
            name=node.name,
            region=node.region,
            address=node.address,
            http_port=8080,
            version="sim",
            protocol=versions.PROTOCOL_VERSION,
        )
        backoff = Backoff()
        while node.id is None:
            try:
                doc = await self._call(node, "POST", "/nodes", body)
            except (httpx.HTTPError, _Refused) as exc:
                self._note(node, "register", exc)
                await backoff.sleep()
            else:
                node.id = json.loads(doc)["id"]

    async def _poll_loop(self, node: SimNode) -> None:
        """The agent's poll loop without the apply: any failed call backs off (exponential,
        jittered: ``edgeplane.node.agent.client.Backoff``) and polls again."""
        assert node.id is not None
        backoff = Backoff()
        while True:
            held = node.manifest
            params: dict[str, Any] = {
                "after": held.revision if held else -1,
                "wait": self.poll_wait_s,
                "refs": "true",
            }
            if held is not None:
                params["have"] = held.hash
            path = f"/nodes/{node.id}/config"
            try:
                raw = await self._call(
                    node, "GET", path, params=params, timeout=self.poll_wait_s + 10
                )
                poll = ConfigPoll.model_validate_json(raw)
                for purge in poll.purges:
                    done = PurgeAck(completed_at=datetime.now(UTC), purged_count=0)
                    await self._call(node, "POST", f"/nodes/{node.id}/purges/{purge.id}", done)
                manifest = poll.manifest
                if poll.delta is not None:
                    if held is None:
                        raise _Refused("a delta, and no manifest held")
                    manifest = poll.delta.apply(held)
                if manifest is not None:
                    await self._fetch(node, manifest)
            except (httpx.HTTPError, _Refused, ValueError) as exc:
                self._note(node, "poll", exc)
                if isinstance(exc, ValueError):
                    node.manifest = None  # a delta that does not fit: ask for it whole
                await backoff.sleep()
                continue
            backoff.reset()
            if manifest is None:
                if held is not None and poll.revision < held.revision:
                    node.manifest = None  # the control plane's state is older: take it whole
                continue
            node.manifest = manifest
            await self._ack(node, manifest)

    async def _ack(self, node: SimNode, manifest: EdgeManifest) -> None:
        """Acknowledge ``manifest``, until the control plane takes it (backing off)."""
        ack = Ack(revision=manifest.revision, hash=manifest.hash, ok=True, apply_ms=0.0)
        backoff = Backoff()
        while True:
            try:
                await self._call(node, "POST", f"/nodes/{node.id}/ack", ack)
            except (httpx.HTTPError, _Refused) as exc:
                self._note(node, "ack", exc)
                await backoff.sleep()
            else:
                break
        node.acked = manifest.revision
        with self._changed:
            self._changed.notify_all()

    async def _fetch(self, node: SimNode, manifest: EdgeManifest) -> None:
        zones = set(manifest.zones.values())
        wanted = [h for h in manifest.objects() if h not in node.have]
        for i in range(0, len(wanted), OBJECTS_BATCH):
            asked = wanted[i : i + OBJECTS_BATCH]
            ask = ObjectsRequest(hashes=asked)
            raw = await self._call(node, "POST", f"/nodes/{node.id}/objects", ask, timeout=60.0)
            objects = json.loads(raw)["objects"]
            for h in asked:
                if h not in objects:
                    raise _Refused(f"object {h[:12]} not in the answer")
                node.have.add(h)
                if h in zones:
                    node.serials[h] = int(objects[h].get("serial", 0))
        named = set(manifest.objects())  # forget what the manifest no longer names
        node.have &= named
        node.serials = {h: s for h, s in node.serials.items() if h in named}

    async def _heartbeat_loop(self, node: SimNode) -> None:
        """A heartbeat every ``heartbeat_s`` from a random moment on; a failed one is noted,
        and the next one sent at the next interval (as the agent does)."""
        await asyncio.sleep(random.uniform(0, self.heartbeat_s))
        while True:
            started = time.monotonic()
            serials = None
            if node.manifest is not None:
                now = {z: node.serials.get(h, 0) for z, h in node.manifest.zones.items()}
                if now != node.sent_serials:
                    serials = now
            body = Heartbeat(healthy=True, dns_serials=serials)
            if node.sent_serials is None and serials is None:
                body = Heartbeat(healthy=True)  # the first one: no zones served yet
            try:
                await self._call(node, "POST", f"/nodes/{node.id}/heartbeat", body, timeout=5.0)
            except (httpx.HTTPError, _Refused) as exc:
                self._note(node, "heartbeat", exc)
            else:
                if serials is not None:
                    node.sent_serials = serials
            await asyncio.sleep(max(0.0, self.heartbeat_s - (time.monotonic() - started)))

    async def _node(self, node: SimNode) -> None:
        await self._register(node)
        beating = asyncio.create_task(self._heartbeat_loop(node))
        try:
            await self._poll_loop(node)
        finally:
            beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beating

    async def _start(self, nodes: list[SimNode]) -> None:
        for node in nodes:
            self._tasks.append(asyncio.create_task(self._node(node)))

    async def _stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        await self._http.aclose()

    # The bench's side -------------------------------------------------------------------

    def add(self, nodes: list[SimNode]) -> None:
        """Start ``nodes`` (each registers, polls and heartbeats from now on)."""
        self.nodes.extend(nodes)
        self._run(self._start(nodes))

    def acked(self, revision: int) -> int:
        """How many simulated nodes acknowledged ``revision`` or a newer one."""
        return sum(1 for n in self.nodes if n.acked >= revision)

    def wait_acked(self, revision: int, timeout: float) -> bool:
        """Until every simulated node acknowledged ``revision`` (or a newer one)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self.acked(revision) < len(self.nodes):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._changed.wait(min(left, 0.1))
        return True

    def ids(self) -> set[str]:
        return {n.id for n in self.nodes if n.id is not None}

    def close(self) -> None:
        """Stop every node and the loop (idempotent)."""
        if not self._loop.is_running():
            return
        with contextlib.suppress(Exception):
            self._run(self._stop(), timeout=30.0)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
