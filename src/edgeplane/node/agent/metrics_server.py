"""The edge node's metrics port: ``GET /metrics`` for Prometheus, behind a bearer token.

A small threaded HTTP server of its own (a scrape never waits on the agent's event loop, and
the agent never waits on a scrape), on loopback unless told otherwise (``--metrics-bind``).
Every request needs ``Authorization: Bearer <token>`` with the node's metrics token (a metrics
token of the control plane, ``edgeplane token create --metrics``, given to the node; only its
SHA-256 is kept); ``GET /metrics`` answers the text format, or OpenMetrics when asked, gzip-
compressed when accepted (a node serving 10,000 sites exposes megabytes).
"""

from __future__ import annotations

import gzip
import hashlib
import hmac
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

log = logging.getLogger(__name__)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.strip().encode()).hexdigest()


class MetricsServer:
    def __init__(
        self, registry: CollectorRegistry | None, host: str, port: int, token: str
    ) -> None:
        """Binds at once (a port taken raises OSError); serves from ``start``. ``registry``:
        what to expose (set later by the agent when None)."""
        self.registry = registry or CollectorRegistry()
        self._hash = token_hash(token)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.answer(self)

            def log_message(self, format: str, *args: object) -> None:
                pass  # no line per scrape

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def allowed(self, authorization: str | None) -> bool:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return False
        return hmac.compare_digest(token_hash(token), self._hash)

    def answer(self, request: BaseHTTPRequestHandler) -> None:
        path = request.path.split("?", 1)[0]
        if path != "/metrics":
            self._reply(request, 404, b"not found: the metrics are at /metrics\n")
            return
        if not self.allowed(request.headers.get("Authorization")):
            self._reply(
                request,
                401,
                b"a metrics token is needed: Authorization: Bearer <token>\n",
                {"WWW-Authenticate": "Bearer"},
            )
            return
        encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
        try:
            body = encoder(self.registry)
        except Exception:
            log.exception("metrics could not be collected")
            self._reply(request, 500, b"the metrics could not be collected\n")
            return
        headers = {}
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            body = gzip.compress(body, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        self._reply(request, 200, body, headers, content_type)

    @staticmethod
    def _reply(
        request: BaseHTTPRequestHandler,
        status: int,
        body: bytes,
        headers: dict[str, str] | None = None,
        content_type: str = "text/plain; charset=utf-8",
    ) -> None:
        request.send_response(status)
        request.send_header("Content-Type", content_type)
        request.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            request.send_header(name, value)
        request.end_headers()
        request.wfile.write(body)

    def start(self) -> None:
        self._thread = threading.Thread(
            # polled every 0.1 s for a stop (shutdown() waits for the next poll)
            target=self.httpd.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="metrics",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
