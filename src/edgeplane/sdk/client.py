"""An async REST client for the control plane, remote (URL + token) or embedded."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterable
from typing import Any, BinaryIO, TypeVar

import httpx
from pydantic import BaseModel, TypeAdapter
from pydantic_core import to_jsonable_python

from edgeplane.errors import EdgeplaneError, RemoteError, Unauthenticated, from_problem
from edgeplane.settings import Settings

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
# A raw request body: bytes, or chunks streamed as they are produced (a file being read).
Content = bytes | AsyncIterable[bytes]

TIMEOUT = httpx.Timeout(30.0, connect=5.0)


class Client:
    """Talks to ``settings.url`` with ``settings.token``, or to an embedded control plane.

    httpx clients belong to one event loop; ``asyncio.run`` may be called many times with the
    same ``Client``, so one httpx client is kept per running loop.
    """

    def __init__(self, settings: Settings | None = None, *, project: str | None = None) -> None:
        self.settings = settings or Settings.from_env()
        self.project = project
        self._per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient]
        self._per_loop = weakref.WeakKeyDictionary()
        if self.settings.url:
            if not self.settings.token:
                raise Unauthenticated(
                    "EDGEPLANE_URL is set but EDGEPLANE_TOKEN is not; give the API token"
                )
            self.base_url = self.settings.url.rstrip("/")
            self._transport: httpx.AsyncBaseTransport | None = None
        else:
            from edgeplane.sdk.embedded import embedded_app

            self.base_url = "http://embedded"
            self._transport = httpx.ASGITransport(app=embedded_app(self.settings))

    @property
    def remote(self) -> bool:
        return self._transport is None

    def _http(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        client = self._per_loop.get(loop)
        if client is None:
            headers = {"User-Agent": "edgeplane-sdk"}
            if self.settings.token and self.remote:
                headers["Authorization"] = f"Bearer {self.settings.token}"
            client = httpx.AsyncClient(
                base_url=self.base_url,
                transport=self._transport,
                headers=headers,
                timeout=TIMEOUT,
            )
            self._per_loop[loop] = client
        return client

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        content: Content | None = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> Any:
        """A request with a JSON body (``json``) or a raw one (``content``, with its
        ``headers``: Content-Type, Content-Length); ``timeout`` overrides the default read
        timeout (a long upload). The answer's JSON, or None when it has no body."""
        response = await self._send(
            method,
            path,
            json=json,
            params=params,
            content=content,
            headers=headers,
            timeout=timeout,
        )
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    async def request_text(
        self, method: str, path: str, *, params: dict[str, Any] | None = None
    ) -> str:
        """A request whose answer is text, not JSON (a PEM document)."""
        return (await self._send(method, path, params=params)).text

    async def download(
        self,
        path: str,
        out: BinaryIO,
        *,
        params: dict[str, Any] | None = None,
        timeout: float | None = None,
    ) -> int:
        """A GET whose answer (an archive) is written to ``out`` as it arrives; the bytes
        written. An error answer raises as ``request`` does, having written nothing."""
        query = {k: to_jsonable_python(v) for k, v in (params or {}).items() if v is not None}
        if self.project and "project" not in query:
            query["project"] = self.project
        extra: dict[str, Any] = {}
        if timeout is not None:
            extra["timeout"] = httpx.Timeout(timeout, connect=TIMEOUT.connect)
        written = 0
        try:
            async with self._http().stream("GET", path, params=query, **extra) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise _error_of(response)
                async for chunk in response.aiter_bytes():
                    await asyncio.to_thread(out.write, chunk)
                    written += len(chunk)
        except httpx.TransportError as exc:
            raise RemoteError(
                f"cannot reach the control plane at {self.base_url}: {exc.__class__.__name__}",
                status=503,
            ) from None
        return written

    async def _send(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        content: Content | None = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        query = {k: to_jsonable_python(v) for k, v in (params or {}).items() if v is not None}
        if self.project and "project" not in query:
            query["project"] = self.project
        body = to_jsonable_python(json) if json is not None else None
        extra: dict[str, Any] = {}
        if content is not None:
            extra["content"] = content
        if headers:
            extra["headers"] = headers
        if timeout is not None:
            extra["timeout"] = httpx.Timeout(timeout, connect=TIMEOUT.connect)
        try:
            response = await self._http().request(method, path, json=body, params=query, **extra)
        except httpx.TransportError as exc:
            raise RemoteError(
                f"cannot reach the control plane at {self.base_url}: {exc.__class__.__name__}",
                status=503,
            ) from None
        if response.status_code >= 400:
            raise _error_of(response)
        return response

    async def get_as(self, kind: type[T], path: str, **params: Any) -> T:
        return TypeAdapter(kind).validate_python(await self.request("GET", path, params=params))

    async def post_as(self, kind: type[T], path: str, body: Any, **params: Any) -> T:
        data = await self.request("POST", path, json=body, params=params)
        return TypeAdapter(kind).validate_python(data)

    async def patch_as(self, kind: type[T], path: str, body: Any) -> T:
        return TypeAdapter(kind).validate_python(await self.request("PATCH", path, json=body))

    async def delete(self, path: str) -> None:
        await self.request("DELETE", path)

    async def aclose(self) -> None:
        for client in list(self._per_loop.values()):
            await client.aclose()
        self._per_loop.clear()


def _error_of(response: httpx.Response) -> EdgeplaneError:
    try:
        doc = response.json()
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        return from_problem(doc, response.status_code)
    return RemoteError(f"HTTP {response.status_code}", status=response.status_code)


def client_for(
    client: Client | None,
    *,
    url: str | None = None,
    token: str | None = None,
    project: str | None = None,
    settings: Settings | None = None,
) -> Client:
    """``client`` when given, else one for ``settings`` (default: the environment, with
    ``url`` / ``token`` overriding it): embedded, or remote when a URL is set."""
    if client is not None:
        return client
    return Client(settings or Settings.from_env(url=url, token=token), project=project)


def body_of(value: BaseModel | dict[str, Any]) -> dict[str, Any]:
    """A request body from a model (the fields set on it) or a plain dict."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_unset=True)
    return dict(value)
