"""``edgeplane demo-origin``: tiny HTTP origins to put behind the edge while trying Edgeplane.

Each port answers ``/`` (a page naming the port, never cached), ``/health`` (``ok``, for health
checks) and ``/static/app.js`` (a script with ``Cache-Control: public, max-age=86400``, an
``ETag`` and a ``Last-Modified``, the kind of file a CDN caches), HEAD as well as GET, and 404
for anything else. Every answer names the origin in ``X-Demo-Origin``. Runs until SIGINT /
SIGTERM. Not for production: it is the stand-in for your application in the README's quick
start.
"""

from __future__ import annotations

import hashlib
import signal
import sys
import threading
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Annotated

import typer

STARTED = formatdate(usegmt=True)
NOT_FOUND = ("text/plain; charset=utf-8", "no-store", b"not found\n")


def _pages(port: int) -> dict[str, tuple[str, str, bytes]]:
    """path -> (content type, cache control, body)."""
    return {
        "/": (
            "text/html; charset=utf-8",
            "no-store",
            f"<!doctype html><title>demo origin :{port}</title>"
            f"<h1>Edgeplane demo origin on port {port}</h1>\n".encode(),
        ),
        "/health": ("text/plain; charset=utf-8", "no-store", b"ok\n"),
        "/static/app.js": (
            "application/javascript; charset=utf-8",
            "public, max-age=86400",
            f'console.log("served by the demo origin on port {port}");\n'.encode(),
        ),
    }


def _handler(port: int, verbose: bool) -> type[BaseHTTPRequestHandler]:
    pages = _pages(port)

    class Handler(BaseHTTPRequestHandler):
        server_version = "edgeplane-demo-origin"
        protocol_version = "HTTP/1.1"
        # The headers and the body are two writes: with Nagle's algorithm the body waits for
        # the peer's delayed ACK of the headers (40 ms on Linux) on a kept-alive connection.
        disable_nagle_algorithm = True

        def _answer(self, with_body: bool) -> None:
            path = self.path.split("?", 1)[0]
            page = pages.get(path)
            status, (ctype, cache, body) = (200, page) if page else (404, NOT_FOUND)
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", cache)
            self.send_header("X-Demo-Origin", f"127.0.0.1:{port}")
            if page is not None and cache.startswith("public"):
                self.send_header("ETag", f'"{hashlib.sha256(body).hexdigest()[:16]}"')
                self.send_header("Last-Modified", STARTED)
            self.end_headers()
            if with_body:
                self.wfile.write(body)

        def do_GET(self) -> None:
            self._answer(True)

        def do_HEAD(self) -> None:
            self._answer(False)

        def log_message(self, format: str, *args: object) -> None:
            if verbose:
                sys.stderr.write(f"demo-origin :{port} {format % args}\n")

    return Handler


def demo_origin(
    port: Annotated[
        list[int] | None,
        typer.Option("--port", help="a port to answer on; repeatable (default 3000)"),
    ] = None,
    host: Annotated[str, typer.Option("--host", help="address to listen on")] = "127.0.0.1",
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="log every request")] = False,
) -> None:
    """Tiny demo origins for the quick start: `/` names the port, `/health` answers ok,
    `/static/app.js` is cacheable. Until Ctrl-C."""
    ports = list(dict.fromkeys(port or [3000]))
    servers: list[ThreadingHTTPServer] = []
    for p in ports:
        if not 1 <= p <= 65535:
            typer.echo(f"error: --port {p}: must be 1-65535", err=True)
            raise typer.Exit(2)
        try:
            server = ThreadingHTTPServer((host, p), _handler(p, verbose))
        except OSError as exc:
            for s in servers:
                s.server_close()
            typer.echo(f"error: --port {p}: cannot listen on {host}:{p}: {exc.strerror}", err=True)
            raise typer.Exit(1) from None
        server.daemon_threads = True
        servers.append(server)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    threads = [
        threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        for s in servers
    ]
    for t in threads:
        t.start()
    urls = ", ".join(f"http://{host}:{p}" for p in ports)
    typer.echo(f"demo origin on {urls} (/, /health, /static/app.js); Ctrl-C stops it", err=True)
    stop.wait()
    for s in servers:
        s.shutdown()
        s.server_close()
