"""The agent's side of the edge protocol (``edgeplane.protocol.messages``), over httpx.

Every call carries the node's edge token in the ``Authorization`` header (the token never
appears in a log line or an exception message) and the protocol version it speaks in the
``Edgeplane-Protocol`` header. The control plane may have several URLs (its replicas):
``EdgeClient`` moves to the next when one fails. Failures come in two kinds:

- ``Unreachable``: the control plane could not be reached or answered 5xx. The caller retries
  with ``Backoff`` (exponential, full jitter) and keeps serving what it has.
- ``Rejected``: a 4xx answer (bad token, unknown node, invalid body): retrying the same call
  will not help; the message is the problem document's detail.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import httpx
from pydantic import BaseModel, ValidationError

from edgeplane.protocol import lenient, versions
from edgeplane.protocol.messages import (
    AccessLogReport,
    Ack,
    AnalyticsReport,
    ConfigPoll,
    EdgeNode,
    FunctionLogReport,
    FunctionTrafficReport,
    HealthReport,
    Heartbeat,
    NodeRegister,
    ObjectsRequest,
    PurgeAck,
    UptimeReport,
    WafReport,
)
from edgeplane.protocol.versions import PROTOCOL_VERSION
from edgeplane.version import __version__

log = logging.getLogger("edgeplane.agent")
T = TypeVar("T")

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


def _problem(response: httpx.Response) -> dict[str, Any]:
    try:
        doc = response.json()
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _detail(response: httpx.Response) -> str:
    try:
        doc = response.json()
    except ValueError:
        return response.text[:500] or response.reason_phrase
    if isinstance(doc, dict):
        return str(doc.get("detail") or doc.get("title") or doc)[:2000]
    return str(doc)[:2000]


def shown(url: str) -> str:
    """``url`` as logs and messages show it: without a user name or password."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def control_plane_urls(values: str | Iterable[str]) -> tuple[str, ...]:
    """The control plane's URLs from ``--control-plane`` values (each one URL or several,
    comma-separated), in order, without repeats; ``ValueError`` naming a URL that is not
    one."""
    urls: list[str] = []
    for value in [values] if isinstance(values, str) else values:
        for part in value.split(","):
            url = part.strip().rstrip("/")
            if not url:
                continue
            try:
                parts = urlsplit(url)
                parts.port  # noqa: B018 (a port that is not a number raises)
            except ValueError:
                parts = None
            if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(
                    f"{shown(url)!r} is not a control plane URL (http://HOST:PORT or https://...)"
                )
            if url not in urls:
                urls.append(url)
    if not urls:
        raise ValueError("no control plane URL given")
    return tuple(urls)


class EdgeClient:
    """The control plane, one edge token. Several URLs (the control plane's replicas) are
    tried in turn: a call that finds its URL unreachable moves to the next one at once, and
    raises ``Unreachable`` only when none answered (the caller's backoff is then between
    full rounds); the client stays on a URL that answers. The move is logged once (and the
    URL that answers again, once).

    The protocol version spoken to each URL is this agent's (``PROTOCOL_VERSION``) until that
    control plane shows an older one: the version in its answers' ``Edgeplane-Protocol``
    header, the versions its refusal names (``protocols``), or a field of a newer version it
    refused as unknown (a control plane of version 1 has no header). What is sent to it then
    has only the fields its version knows, and the call is tried again once."""

    def __init__(self, url: str | Sequence[str], token: str, *, timeout_s: float = 10.0) -> None:
        self.urls = control_plane_urls(url)
        self.timeout_s = timeout_s
        self._current = 0  # the URL calls go to
        self._moved = False  # moved since a URL last answered (the move was logged)
        self._versions: dict[str, int] = {}  # URL -> the protocol version spoken to it
        self._http = httpx.AsyncClient(
            headers={
                "Authorization": f"Bearer {token}",
                "User-Agent": f"edgeplane-agent/{__version__}",
            },
            timeout=timeout_s,
        )

    @property
    def url(self) -> str:
        """The URL calls go to now."""
        return self.urls[self._current]

    def protocol(self, url: str | None = None) -> int:
        """The protocol version spoken to ``url`` (the current one by default)."""
        return self._versions.get(url or self.url, PROTOCOL_VERSION)

    async def aclose(self) -> None:
        await self._http.aclose()

    # Several URLs --------------------------------------------------------------------------

    async def _failover(self, attempt: Callable[[str], Awaitable[T]]) -> T:
        """``attempt`` at the current URL, then at the next ones while they are unreachable."""
        last: Unreachable | None = None
        for _ in self.urls:
            index = self._current
            try:
                result = await attempt(self.urls[index])
            except Unreachable as exc:
                last = exc
                self._move_from(index, exc)
                continue
            except Rejected:
                self._answered(index)
                raise
            self._answered(index)
            return result
        assert last is not None
        raise last

    def _move_from(self, index: int, exc: Unreachable) -> None:
        if len(self.urls) == 1 or self._current != index:
            return  # one URL, or another call moved on already
        self._current = (index + 1) % len(self.urls)
        if not self._moved:
            self._moved = True
            log.warning(
                "control plane %s unreachable (%s); moving to %s",
                shown(self.urls[index]),
                exc,
                shown(self.urls[self._current]),
            )

    def _answered(self, index: int) -> None:
        if self._moved and index == self._current:
            self._moved = False
            log.info("control plane %s answers: staying on it", shown(self.urls[index]))

    # Versions ------------------------------------------------------------------------------

    def _learn(self, url: str, response: httpx.Response) -> None:
        """The version to speak to ``url``, from its answer's header, when it has one (a
        control plane of version 1 has none: nothing is learnt from that)."""
        header = response.headers.get(versions.HEADER)
        if header is None:
            return
        try:
            best = versions.common(1, versions.parse_header(header))
        except ValueError:
            return
        if best is not None and best != self.protocol(url):
            self._versions[url] = best

    def _older(self, url: str, message: str | None, response: httpx.Response) -> bool:
        """Whether a refusal says that ``url`` speaks an older version than the one used, which
        is then the one spoken to it (the call is worth trying again)."""
        if response.status_code != 422:
            return False
        doc = _problem(response)
        used = self.protocol(url)
        served = doc.get("protocols")
        best: int | None = None
        if isinstance(served, dict):
            low, high = served.get("min"), served.get("max")
            if isinstance(low, int) and isinstance(high, int):
                best = versions.common(low, high)
        elif message is not None:
            added = versions.ADDED.get(message, {})
            errors = doc.get("errors")
            refused: set[str] = set()
            for e in errors if isinstance(errors, list) else []:
                if isinstance(e, dict) and isinstance(e.get("field"), str):
                    refused.add(e["field"])
            olds = [added[f] - 1 for f in refused if f in added and added[f] <= used]
            best = min(olds) if olds else None
        if best is None or best >= used:
            return False
        self._versions[url] = best
        log.warning(
            "control plane %s speaks edge protocol version %d (this agent %d): speaking %d",
            shown(url),
            best,
            PROTOCOL_VERSION,
            best,
        )
        return True

    def _content(self, body: BaseModel, version: int) -> bytes:
        """``body`` as the control plane of ``version`` knows it."""
        name = type(body).__name__
        if version >= PROTOCOL_VERSION or not versions.added_after(name, version):
            return body.model_dump_json(exclude_unset=False).encode()
        doc = versions.for_protocol(body.model_dump(mode="json"), name, version)
        return json.dumps(doc).encode()

    # Calls ---------------------------------------------------------------------------------

    async def _send(
        self,
        url: str,
        method: str,
        path: str,
        body: BaseModel | None,
        params: dict[str, Any] | None,
        timeout_s: float,
    ) -> httpx.Response:
        """The answer of ``url`` (any but 5xx); ``Unreachable`` when there is none."""
        for _ in range(2):  # again once, after learning the version the control plane speaks
            version = self.protocol(url)
            headers = {versions.HEADER: str(version)}
            content = None
            if body is not None:
                content = self._content(body, version)
                headers["Content-Type"] = "application/json"
            try:
                response = await self._http.request(
                    method,
                    f"{url}{BASE}{path}",
                    content=content,
                    headers=headers,
                    params=params,
                    timeout=timeout_s,
                )
            except httpx.TimeoutException:
                raise Unreachable(f"{method} {path}: timed out") from None
            except httpx.TransportError as exc:
                raise Unreachable(f"{method} {path}: {type(exc).__name__}: {exc}") from None
            if response.status_code >= 500:
                raise Unreachable(f"{method} {path}: {response.status_code} {_detail(response)}")
            self._learn(url, response)
            message = type(body).__name__ if body is not None else None
            if not self._older(url, message, response):
                break
        return response

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
        timeout = timeout_s or self.timeout_s

        async def attempt(url: str) -> httpx.Response:
            response = await self._send(url, method, path, body, params, timeout)
            if response.status_code >= 400:
                raise Rejected(response.status_code, f"{method} {path}: {_detail(response)}")
            return response

        response = await self._failover(attempt)
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
    ) -> tuple[ConfigPoll, list[str]]:
        """The long-poll, the snapshot as a manifest (zones and certificates by reference), or
        as a delta from the manifest of revision ``after`` whose hash is ``have``; and the
        paths of the snapshot's fields this agent does not know, left out
        (``edgeplane.protocol.lenient``).

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
            return lenient.parse_poll(ConfigPoll, body or b"null")
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

    async def report_waf_matches(self, node_id: str, body: WafReport) -> None:
        await self._call("POST", f"/nodes/{node_id}/waf", body, timeout_s=30.0)

    async def report_function_traffic(self, node_id: str, body: FunctionTrafficReport) -> None:
        await self._call("POST", f"/nodes/{node_id}/function-traffic", body, timeout_s=30.0)

    async def report_function_logs(self, node_id: str, body: FunctionLogReport) -> None:
        await self._call("POST", f"/nodes/{node_id}/function-logs", body, timeout_s=30.0)

    async def download_bundle(self, bundle: str, write: Callable[[bytes], object]) -> int:
        """Stream the archive of ``bundle`` to ``write``, chunk by chunk; the bytes written.
        A URL that fails before the first chunk is left for the next one; after it, the
        download fails (``Unreachable``: the caller tries again, from the start)."""
        path = f"{BASE}/bundles/{bundle}"

        async def attempt(url: str) -> int:
            written = 0
            headers = {versions.HEADER: str(self.protocol(url))}
            try:
                async with self._http.stream(
                    "GET", f"{url}{path}", headers=headers, timeout=60.0
                ) as response:
                    if response.status_code >= 400:
                        await response.aread()
                        message = f"GET {path}: {_detail(response)}"
                        if response.status_code < 500:
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

        return await self._failover(attempt)
