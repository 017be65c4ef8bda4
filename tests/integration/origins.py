"""Origin HTTP servers for edge tests, each in a process of its own (so tests can SIGKILL or
SIGSTOP it).

Run directly: ``python tests/integration/origins.py --name a [--port P] [--counter FILE]``
prints ``READY <port>`` once it accepts connections. From tests use :func:`start_origin` (or the
``origin_factory`` fixture, which stops every origin at the end of the test).

Behaviour: HTTP/1.1 with keep-alive, one thread per connection. Every response carries
``X-Origin: <name>`` and ``X-Origin-Count: <n>`` (the per-process request counter) and a body
``<name> <n> <path>``. Query parameters: ``sleep=SECONDS`` delays the answer, ``status=NNN``
sets the status, ``cc=...`` sets ``Cache-Control``, ``bytes=N`` answers N bytes, ``h=Name:Value``
(repeatable) adds a header, ``etag=V`` sends ``ETag: "V"`` and answers 304 to a request whose
``If-None-Match`` names it (with ``X-Origin-Validated: 1``), ``echo=1`` lists the request's
header names in ``X-Origin-Request-Headers``. ``/health``
answers 200, or the status set by ``POST /__control/health?status=NNN``. The counters are also
written to a small file (the side channel: readable while the process is stopped, never routed
through an edge); ``/health`` and ``/__control`` requests are counted apart.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

_COUNTER_WIDTH = 48


# --------------------------------------------------------------------------- the server


class _State:
    def __init__(self, name: str, counter_file: Path | None, delay: float = 0.0) -> None:
        self.name = name
        self.delay = delay
        self.lock = threading.Lock()
        self.hits = 0
        self.health_hits = 0
        self.health_status = 200
        self.fd = os.open(counter_file, os.O_RDWR | os.O_CREAT, 0o644) if counter_file else None
        self._write()

    def _write(self) -> None:
        if self.fd is not None:
            text = f"{self.hits} {self.health_hits}".ljust(_COUNTER_WIDTH - 1) + "\n"
            os.pwrite(self.fd, text.encode(), 0)

    def count(self, health: bool) -> int:
        with self.lock:
            if health:
                self.health_hits += 1
                n = self.health_hits
            else:
                self.hits += 1
                n = self.hits
            self._write()
            return n


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "origin"
    sys_version = ""
    state: _State

    def setup(self) -> None:
        super().setup()
        # headers and body are two writes: without this, Nagle + delayed ACK add ~40 ms
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _answer(self, status: int, body: bytes, headers: dict[str, str], n: int) -> None:
        self.send_response(status)
        self.send_header("X-Origin", self.state.name)
        self.send_header("X-Origin-Count", str(n))
        if status != 304:
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        if parts.path.startswith("/__control/"):
            n = self.state.count(health=True)
            if parts.path == "/__control/health" and "status" in query:
                self.state.health_status = int(query["status"])
            self._answer(200, f"{self.state.health_status}\n".encode(), {}, n)
            return
        if parts.path == "/health":
            n = self.state.count(health=True)
            if "sleep" in query:
                time.sleep(float(query["sleep"]))
            status = self.state.health_status
            self._answer(status, f"{self.state.name} health {status}\n".encode(), {}, n)
            return
        n = self.state.count(health=False)
        if self.state.delay:
            time.sleep(self.state.delay)
        if "sleep" in query:
            time.sleep(float(query["sleep"]))
        headers: dict[str, str] = {}
        if "cc" in query:
            headers["Cache-Control"] = query["cc"]
        for extra in parse_qs(parts.query).get("h", []):
            name, _, value = extra.partition(":")
            headers[name.strip()] = value.strip()
        if "echo" in query:  # the names of the request's header fields, as received
            headers["X-Origin-Request-Headers"] = ",".join(k.lower() for k in self.headers)
        if "etag" in query:
            headers["ETag"] = f'"{query["etag"]}"'
            if self.headers.get("If-None-Match") == headers["ETag"]:
                headers["X-Origin-Validated"] = "1"
                self._answer(304, b"", headers, n)
                return
        if "bytes" in query:
            body = b"x" * int(query["bytes"])
        else:
            body = f"{self.state.name} {n} {self.path}\n".encode()
        self._answer(int(query.get("status", "200")), body, headers, n)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _handle


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256


def serve(name: str, port: int, counter_file: Path | None, delay: float = 0.0) -> None:
    state = _State(name, counter_file, delay)
    handler = type("Handler", (_Handler,), {"state": state})
    server = _Server(("127.0.0.1", port), handler)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    print(f"READY {server.server_address[1]}", flush=True)
    server.serve_forever(poll_interval=0.5)


# --------------------------------------------------------------------------- the test side


@dataclass
class Origin:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    counter_file: Path
    _stopped: bool = field(default=False, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def _counters(self) -> tuple[int, int]:
        text = self.counter_file.read_text().split()
        return int(text[0]), int(text[1])

    def hits(self) -> int:
        """Requests seen, not counting /health and /__control."""
        return self._counters()[0]

    def health_hits(self) -> int:
        return self._counters()[1]

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL (a dead backend: connections are refused)."""
        if self.alive():
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        """SIGSTOP (a hung backend: the kernel accepts, nobody answers)."""
        if self.alive():
            os.kill(self.pid, signal.SIGSTOP)
            self._stopped = True

    def cont(self) -> None:
        if self.alive():
            os.kill(self.pid, signal.SIGCONT)
            self._stopped = False

    def terminate(self) -> None:
        if self.alive():
            if self._stopped:
                self.cont()
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        with contextlib.suppress(OSError):
            self.counter_file.unlink()

    def set_health(self, status: int) -> None:
        """Make /health answer ``status`` (talks to the origin directly, not through an edge)."""
        import httpx

        httpx.post(f"{self.url}/__control/health", params={"status": status}, timeout=5)

    def restart(self) -> Origin:
        """Start a fresh process with the same name on the same port (after kill/terminate)."""
        self.terminate()
        return start_origin(self.name, port=self.port)


def start_origin(
    name: str, port: int | None = None, *, delay: float = 0.0, timeout: float = 5.0
) -> Origin:
    """Start an origin process on 127.0.0.1 (a free port unless given); returns once it accepts.

    ``delay``: seconds every answer (but /health) waits, to make a slow backend.
    """
    fd, counter = tempfile.mkstemp(prefix=f"origin-{name}-", suffix=".count")
    os.close(fd)
    process = subprocess.Popen(
        [
            sys.executable,
            "-u",
            __file__,
            "--name",
            name,
            "--port",
            str(port or 0),
            "--counter",
            counter,
            "--delay",
            str(delay),
        ],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    line = b""
    # readline blocks until the child prints READY (or exits: EOF).
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if line.startswith(b"READY ") or not line:
            break
    if not line.startswith(b"READY "):
        process.kill()
        process.wait()
        raise RuntimeError(f"origin {name} did not start (port {port})")
    process.stdout.close()
    return Origin(name, int(line.split()[1]), process, Path(counter))


class OriginSet:
    """Origins started by one test or module, all terminated by :meth:`close`."""

    def __init__(self) -> None:
        self.origins: list[Origin] = []

    def start(self, name: str, port: int | None = None, *, delay: float = 0.0) -> Origin:
        origin = start_origin(name, port, delay=delay)
        self.origins.append(origin)
        return origin

    def restart(self, origin: Origin) -> Origin:
        fresh = origin.restart()
        self.origins.append(fresh)
        return fresh

    def close(self) -> None:
        for origin in self.origins:
            origin.terminate()


@contextlib.contextmanager
def origin_set() -> Iterator[OriginSet]:
    origins = OriginSet()
    try:
        yield origins
    finally:
        origins.close()


try:  # a fixture for tests that import it (pytest is absent when run as a script)
    import pytest

    @pytest.fixture
    def origin_factory() -> Iterator[OriginSet]:
        with origin_set() as origins:
            yield origins

except ImportError:  # pragma: no cover
    pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--counter", type=Path)
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args()
    serve(args.name, args.port, args.counter, args.delay)


if __name__ == "__main__":
    main()
