"""For the edge functions runtime's tests: a real runtime process in a temporary prefix,
requests to its listen socket as nginx makes them, the console log's lines, and a small HTTP
server on a unix socket standing in for nginx's internal fetch socket."""

from __future__ import annotations

import http.client
import http.server
import json
import os
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from edgeplane.node.functions.find import find_runtime
from edgeplane.node.functions.process import FunctionRuntime
from edgeplane.routing.geoip import _packaged_database

RUNTIME = find_runtime()
needs_runtime = pytest.mark.skipif(
    RUNTIME is None, reason="no Node.js with the function runtime's npm packages"
)


def geoip_db() -> str:
    """GeoLite2-City of the maxminddb-geolite2 package."""
    return str(_packaged_database())


def function(key: str, code: str, version: int = 1, **settings: Any) -> dict[str, Any]:
    """A config entry for function ``key`` ("<project>/<name>") at ``version``."""
    name = key.split("/")[1]
    entry: dict[str, Any] = {
        "key": key,
        "id": f"{key}@{version}",
        "name": name,
        "version": version,
        "sha256": f"sha-{key}-{version}",
        "code": code,
        "env": {},
        "secrets": {},
        "timeout_ms": 2000,
        "memory_mb": 32,
        "hosts": ["shop.example.com"],
    }
    entry.update(settings)
    return entry


@contextmanager
def running_runtime(directory: Path) -> Iterator[FunctionRuntime]:
    """A runtime under ``directory``, stopped afterwards."""
    assert RUNTIME is not None
    runtime = FunctionRuntime(
        directory / "prefix",
        directory / "logs" / "functions.json",
        directory / "state" / "config.json",
        runtime=RUNTIME,
    )
    runtime.start()
    try:
        yield runtime
    finally:
        runtime.stop()


class _UnixConnection(http.client.HTTPConnection):
    """HTTP over a unix socket (light: an httpx client makes an SSL context each time, which
    takes longer than what the timing tests measure)."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("runtime", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.path)
        self.sock = sock


def call(
    runtime: FunctionRuntime,
    key: str,
    path: str = "/",
    *,
    method: str = "GET",
    host: str = "shop.example.com",
    ip: str | None = "203.0.113.9",
    proto: str = "https",
    rid: str | None = None,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    timeout: float = 10.0,
) -> httpx.Response:
    """One request for function ``key`` as nginx sends it."""
    sent = {"Host": host, "X-Edgeplane-Function": key, "X-Forwarded-Proto": proto}
    if ip is not None:
        sent["X-Real-IP"] = ip
    if rid is not None:
        sent["X-Edge-Request-Id"] = rid
    sent.update(headers or {})
    connection = _UnixConnection(runtime.listen_socket, timeout)
    try:
        connection.request(method, path, body=body, headers=sent)
        answer = connection.getresponse()
        content = answer.read()
    finally:
        connection.close()
    return httpx.Response(answer.status, headers=answer.getheaders(), content=content)


def console_lines(runtime: FunctionRuntime) -> list[dict[str, Any]]:
    """The console log's lines so far."""
    try:
        text = runtime.console_log.read_text()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.splitlines() if line]


def wait_for_line(
    runtime: FunctionRuntime,
    match: Callable[[dict[str, Any]], bool] = lambda line: True,
    timeout: float = 3.0,
    **fields: Any,
) -> dict[str, Any]:
    """The first console line that has ``fields`` and that ``match`` accepts, waiting for it
    to be written."""
    deadline = time.monotonic() + timeout
    while True:
        for line in console_lines(runtime):
            if all(line.get(k) == v for k, v in fields.items()) and match(line):
                return line
        if time.monotonic() > deadline:
            raise AssertionError(f"no such console line in {console_lines(runtime)[-20:]}")
        time.sleep(0.02)


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    request_queue_size = 128  # as nginx's backlog: concurrent fetches connect at once


class StandIn:
    """An HTTP server on a unix socket (nginx's internal fetch socket): it records each
    request (method, path, headers, body) and answers with ``routes[path]`` (status, headers,
    body) or 200 with a JSON echo."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.requests: list[dict[str, Any]] = []
        self.routes: dict[str, tuple[int, dict[str, str], bytes]] = {}
        stand_in = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                size = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(size) if size else b""
                seen = {
                    "method": self.command,
                    "path": self.path,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": body.decode("utf-8", "replace"),
                }
                stand_in.requests.append(seen)
                status, headers, out = stand_in.routes.get(
                    self.path.split("?")[0],
                    (200, {"Content-Type": "application/json"}, json.dumps(seen).encode()),
                )
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_GET = do_POST = do_PUT = _serve

        if os.path.exists(path):
            os.unlink(path)
        self.server = _UnixHTTPServer(path, Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> StandIn:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
