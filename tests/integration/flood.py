"""Abusive clients for L7 DDoS tests and benches: many connections held open by one address,
slowloris, and a well-behaved client whose latency is measured meanwhile.

Plain sockets, no HTTP library: an attacker writes exactly the bytes it wants and keeps its
connections open. A client address is any loopback address (``127.0.0.2``...): the edge's
per-client limits key on it.
"""

from __future__ import annotations

import http.client
import selectors
import socket
import statistics
import time
from dataclasses import dataclass, field


def partial_header(host: str) -> bytes:
    """A request line and a Host header, and nothing more: the header is never finished."""
    return f"GET / HTTP/1.1\r\nHost: {host}\r\nUser-Agent: flood\r\n".encode()


def full_request(host: str, path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: flood\r\n\r\n".encode()


@dataclass
class Held:
    """Connections one client opened and keeps open: what became of each."""

    socks: list[socket.socket]
    opened_at: float
    answers: dict[int, bytes] = field(default_factory=dict)  # fileno -> first bytes answered
    closed: dict[int, float] = field(default_factory=dict)  # fileno -> seconds until closed
    failed: int = 0  # connections that could not even be opened

    def status(self, fd: int) -> int | None:
        head = self.answers.get(fd, b"")
        if head.startswith(b"HTTP/1.1 ") and len(head) >= 12:
            return int(head[9:12])
        return None

    def statuses(self) -> dict[int, int]:
        out: dict[int, int] = {}
        for fd in self.answers:
            status = self.status(fd)
            if status is not None:
                out[status] = out.get(status, 0) + 1
        return out

    def open_count(self) -> int:
        """Connections neither answered nor closed by the server."""
        return sum(1 for s in self.socks if s.fileno() not in self.answers | self.closed)

    def poll(self, seconds: float) -> None:
        """Read what the server sent for ``seconds``: first answers, and closes."""
        sel = selectors.DefaultSelector()
        for s in self.socks:
            if s.fileno() not in self.closed:
                sel.register(s, selectors.EVENT_READ)
        deadline = time.monotonic() + seconds
        try:
            while (left := deadline - time.monotonic()) > 0 and sel.get_map():
                for key, _ in sel.select(left):
                    sock = key.fileobj
                    assert isinstance(sock, socket.socket)
                    fd = sock.fileno()
                    try:
                        data = sock.recv(4096)
                    except (ConnectionResetError, BlockingIOError):
                        data = b""
                    if data and fd not in self.answers:
                        self.answers[fd] = data
                    if not data:
                        self.closed[fd] = time.monotonic() - self.opened_at
                        sel.unregister(sock)
        finally:
            sel.close()

    def close(self) -> None:
        for s in self.socks:
            s.close()


def hold(port: int, n: int, payload: bytes, *, source: str = "127.0.0.2") -> Held:
    """``n`` connections from ``source`` to the edge, each sending ``payload`` and then
    nothing; they stay open until :meth:`Held.close`."""
    socks: list[socket.socket] = []
    failed = 0
    started = time.monotonic()
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind((source, 0))
        s.settimeout(5)
        try:
            s.connect(("127.0.0.1", port))
            s.sendall(payload)
        except OSError:
            failed += 1
            s.close()
            continue
        s.setblocking(False)
        socks.append(s)
    return Held(socks, started, failed=failed)


def slowloris(port: int, host: str, every_s: float, limit_s: float) -> float | None:
    """A client that sends a request line and Host, then one header line every ``every_s``
    seconds and never ends its header: the seconds until the server cut it (None: not cut
    within ``limit_s``)."""
    s = socket.create_connection(("127.0.0.1", port))
    try:
        started = time.monotonic()
        s.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\n".encode())
        n = 0
        while time.monotonic() - started < limit_s:
            s.settimeout(every_s)
            try:
                if s.recv(4096) == b"":
                    return time.monotonic() - started
            except TimeoutError:
                pass
            except ConnectionResetError:
                return time.monotonic() - started
            try:
                s.sendall(f"X-Slow-{n}: {n}\r\n".encode())
            except (BrokenPipeError, ConnectionResetError):
                return time.monotonic() - started
            n += 1
        return None
    finally:
        s.close()


@dataclass
class Latency:
    ms: list[float]
    statuses: dict[int, int]

    def pct(self, q: float) -> float:
        ordered = sorted(self.ms)
        return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]

    @property
    def p50(self) -> float:
        return statistics.median(self.ms)

    @property
    def p99(self) -> float:
        return self.pct(99)


def measure(port: int, host: str, path: str, n: int, *, source: str = "127.0.0.3") -> Latency:
    """``n`` GETs from a well-behaved client (one keep-alive connection from ``source``; a new
    one when the server closed it): each request's time in ms and the statuses."""
    ms: list[float] = []
    statuses: dict[int, int] = {}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    try:
        for _ in range(n):
            started = time.perf_counter()
            try:
                conn.request("GET", path, headers={"Host": host})
                response = conn.getresponse()
                response.read()
            except (http.client.HTTPException, OSError):
                conn.close()
                conn = http.client.HTTPConnection(
                    "127.0.0.1", port, timeout=10, source_address=(source, 0)
                )
                conn.request("GET", path, headers={"Host": host})
                response = conn.getresponse()
                response.read()
            ms.append((time.perf_counter() - started) * 1000)
            statuses[response.status] = statuses.get(response.status, 0) + 1
    finally:
        conn.close()
    return Latency(ms, statuses)
