"""The agent's side of the edge protocol (``edgeplane.protocol.messages``), over httpx.

Every call carries the node's edge token in the ``Authorization`` header; the token never
appears in a log line or an exception message. Failures come in two kinds:

- ``Unreachable``: the control plane could not be reached or answered 5xx. The caller retries
  with ``Backoff`` (exponential, full jitter) and keeps serving what it has.
- ``Rejected``: a 4xx answer (bad token, unknown node, invalid body): retrying the same call
  will not help; the message is the problem document's detail.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from pydantic import BaseModel, ValidationError

from edgeplane.protocol.messages import (
    AccessLogReport,
    Ack,
    AnalyticsReport,
    ConfigPoll,
    EdgeNode,
    HealthReport,
    Heartbeat,
    NodeRegister,
    ObjectsRequest,
    PurgeAck,
    UptimeReport,
)
from edgeplane.version import __version__

BASE = "/api/v1/edge"
# The long-poll read timeout is the server's wait plus this margin.
POLL_MARGIN_S = 10.0
OBJECTS_BATCH = 1000  # objects per fetch: bounded bodies (certificates are ~2.5 KB each)


class ProtocolError(Exception):
    """A call of the edge protocol failed."""


class Unreachable(ProtocolError):
    """The control plane could not be reached, timed out or failed (5xx)."""


class Rejected(ProtocolError):
    """The control plane refused the call (4xx)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


class Backoff:
    """Exponential backoff with full jitter: the n-th delay is uniform in [0, min(cap, b*2^n)],
    never below ``floor``."""

    def __init__(self, base: float = 0.25, cap: float = 10.0, floor: float = 0.05) -> None:
        self.base = base
        self.cap = cap
        self.floor = floor
        self.attempt = 0

    def next_delay(self) -> float:
        ceiling = min(self.cap, self.base * (2**self.attempt))
        self.attempt = min(self.attempt + 1, 30)
        return max(self.floor, random.uniform(0, ceiling))

    def reset(self) -> None:
        self.attempt = 0

    async def sleep(self) -> None:
        await asyncio.sleep(self.next_delay())


def _detail(response: httpx.Response) -> str:
    try:
        doc = response.json()
    except ValueError:
        return response.text[:500] or response.reason_phrase
    if isinstance(doc, dict):
        return str(doc.get("detail") or doc.get("title") or doc)[:2000]
    return str(doc)[:2000]


class EdgeClient:
    """One control plane, one edge token."""

    def __init__(self, url: str, token: str, *, timeout_s: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self._http = httpx.AsyncClient(
            base_url=self.url,
            headers={
                "Authorization": f"Bearer {token}",
                "User-Agent": f"edgeplane-agent/{__version__}",
            },
            timeout=timeout_s,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _call(
        self,
        method: str,
        path: str,
        body: BaseModel | None = None,
        *,
        params: dict[str, Any] | None = None,
        timeout_s: float | None = None,
        raw: bool = False,
    ) -> Any:
        """The answer's JSON, parsed (``raw``: its bytes, for a model to parse itself)."""
        content = body.model_dump_json(exclude_unset=False).encode() if body else None
        headers = {"Content-Type": "application/json"} if content is not None else None
        try:
            response = await self._http.request(
                method,
                f"{BASE}{path}",
                content=content,
                headers=headers,
                params=params,
                timeout=timeout_s or self.timeout_s,
            )
        except httpx.TimeoutException:
            raise Unreachable(f"{method} {path}: timed out") from None
        except httpx.TransportError as exc:
            raise Unreachable(f"{method} {path}: {type(exc).__name__}: {exc}") from None
        if response.status_code >= 500:
            raise Unreachable(f"{method} {path}: {response.status_code} {_detail(response)}")
        if response.status_code >= 400:
            raise Rejected(response.status_code, f"{method} {path}: {_detail(response)}")
        if response.status_code == 204 or not response.content:
            return None
        if raw:
            return response.content
        try:
            return response.json()
        except ValueError:
            raise Unreachable(f"{method} {path}: the answer is not JSON") from None

    async def register(self, body: NodeRegister) -> EdgeNode:
        return EdgeNode.model_validate(await self._call("POST", "/nodes", body))

    async def poll(
        self, node_id: str, after: int, wait_s: float, have: str | None = None
    ) -> ConfigPoll:
        """The long-poll, the snapshot as a manifest (zones and certificates by reference), or
        as a delta from the manifest of revision ``after`` whose hash is ``have``.

        Parsed from the bytes straight into the model: at 10,000 domains the manifest is
        megabytes, and parsing it into dicts first took ~11 MiB and the time of a second parse.
        """
        params: dict[str, Any] = {"after": after, "wait": wait_s, "refs": "true"}
        if have:
            params["have"] = have
        body = await self._call(
            "GET",
            f"/nodes/{node_id}/config",
            params=params,
            timeout_s=wait_s + POLL_MARGIN_S,
            raw=True,
        )
        try:
            return ConfigPoll.model_validate_json(body or b"null")
        except ValidationError as exc:
            if any(e["type"] == "json_invalid" for e in exc.errors()):
                raise Unreachable(f"GET /nodes/{node_id}/config: the answer is not JSON") from None
            raise

    async def fetch_objects(
        self,
        node_id: str,
        hashes: list[str],
        keep: Callable[[dict[str, Any]], Awaitable[None]],
    ) -> None:
        """Fetch ``hashes``, at most ``OBJECTS_BATCH`` a call, each batch (``hash -> object``,
        parsed JSON) handed to ``keep`` before the next is asked for (bounded memory). The
        batch is keyed by the strings of ``hashes`` (the manifest's), not the answer's: the
        store keeps its names, and 20,000 copies of a hash are 2 MiB. Objects not asked for
        are left out."""
        for i in range(0, len(hashes), OBJECTS_BATCH):
            asked = hashes[i : i + OBJECTS_BATCH]
            doc = await self._call(
                "POST",
                f"/nodes/{node_id}/objects",
                ObjectsRequest(hashes=asked),
                timeout_s=60.0,
            )
            objects = doc.get("objects") if isinstance(doc, dict) else None
            if not isinstance(objects, dict):
                raise Unreachable(f"POST /nodes/{node_id}/objects: no objects in the answer")
            await keep({h: objects[h] for h in asked if h in objects})

    async def ack(self, node_id: str, body: Ack) -> None:
        await self._call("POST", f"/nodes/{node_id}/ack", body)

    async def heartbeat(self, node_id: str, body: Heartbeat) -> None:
        await self._call("POST", f"/nodes/{node_id}/heartbeat", body, timeout_s=5.0)

    async def report_health(self, node_id: str, body: HealthReport) -> None:
        await self._call("POST", f"/nodes/{node_id}/health", body)

    async def ack_purge(self, node_id: str, purge_id: str, body: PurgeAck) -> None:
        await self._call("POST", f"/nodes/{node_id}/purges/{purge_id}", body)

    async def report_analytics(self, node_id: str, body: AnalyticsReport) -> None:
        await self._call("POST", f"/nodes/{node_id}/analytics", body, timeout_s=30.0)

    async def report_uptime(self, node_id: str, body: UptimeReport) -> None:
        await self._call("POST", f"/nodes/{node_id}/uptime", body, timeout_s=30.0)

    async def report_access_logs(self, node_id: str, body: AccessLogReport) -> None:
        await self._call("POST", f"/nodes/{node_id}/logs", body, timeout_s=30.0)

    async def download_bundle(self, bundle: str, write: Callable[[bytes], object]) -> int:
        """Stream the archive of ``bundle`` to ``write``, chunk by chunk; the bytes written."""
        path = f"{BASE}/bundles/{bundle}"
        written = 0
        try:
            async with self._http.stream("GET", path, timeout=60.0) as response:
                if response.status_code >= 400:
                    await response.aread()
                    kind = Unreachable if response.status_code >= 500 else Rejected
                    message = f"GET {path}: {_detail(response)}"
                    if kind is Rejected:
                        raise Rejected(response.status_code, message)
                    raise Unreachable(f"{response.status_code} {message}")
                async for chunk in response.aiter_bytes(1 << 20):
                    write(chunk)
                    written += len(chunk)
        except httpx.TimeoutException:
            raise Unreachable(f"GET {path}: timed out") from None
        except httpx.TransportError as exc:
            raise Unreachable(f"GET {path}: {type(exc).__name__}: {exc}") from None
        return written
