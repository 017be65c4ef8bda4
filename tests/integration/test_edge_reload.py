"""Reloads under load: no request fails while nginx reloads again and again, and no TLS client
ever sees an older certificate (or the default one) after a newer one (real nginx, HTTP/1.1
keep-alive and TLS clients in threads).

A client that reuses a keep-alive connection retries an idempotent request once when the
connection was closed before any answer (RFC 9112, 9.3.1; what browsers and HTTP libraries do):
the old workers of a reload close their idle connections. Anything else is a failure.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import http.client
import socket
import ssl
import threading
import time
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from nginx_edge import Edge, backend, edge_config, pool, running_edge
from origins import Origin, start_origin
from test_edge_tls import make_certs

from edgeplane.protocol.config import CertSpec, EdgeConfig, SiteSpec

pytestmark = [pytest.mark.integration, pytest.mark.serial]

HOST = "reload.test"
RELOADS = 20  # bench/edge.py runs 100


@pytest.fixture(scope="module")
def origin() -> Iterator[Origin]:
    o = start_origin("reload")
    yield o
    o.terminate()


def _config(origin: Origin, cert: CertSpec | None, hsts: int) -> EdgeConfig:
    site = SiteSpec(id="p1", domains=(HOST,), pool="origin.p1", hsts_max_age=hsts)
    certs = (cert,) if cert is not None else ()
    return edge_config([site], [pool("origin.p1", backend(origin))], certs=certs)


class _Https(http.client.HTTPSConnection):
    """HTTPS to the edge's loopback port with SNI (and verification) for ``HOST``."""

    def __init__(self, port: int | None, ctx: ssl.SSLContext) -> None:
        super().__init__("127.0.0.1", port, timeout=10, context=ctx)
        self.tls_context = ctx

    def connect(self) -> None:
        raw = socket.create_connection((self.host, self.port), timeout=self.timeout)
        self.sock = self.tls_context.wrap_socket(raw, server_hostname=HOST)


class Load:
    """Threads of keep-alive GETs (HTTP and HTTPS) until stopped; counts what failed."""

    def __init__(self, edge: Edge, ca: str, threads: int = 3) -> None:
        self.edge, self.stop = edge, threading.Event()
        self.ctx = ssl.create_default_context(cadata=ca)
        self.lock = threading.Lock()
        self.ok = 0
        self.failures: list[str] = []
        self.threads = [
            threading.Thread(target=self._run, args=(tls,), daemon=True)
            for tls in (False, True)
            for _ in range(threads)
        ]

    def _connect(self, tls: bool) -> http.client.HTTPConnection:
        if tls:
            return _Https(self.edge.local.https_port, self.ctx)
        return http.client.HTTPConnection("127.0.0.1", self.edge.local.http_port, timeout=10)

    def _once(self, conn: http.client.HTTPConnection) -> int:
        # HTTPS: a cached response; HTTP: one never stored, every request through the origin
        # hop on its kept-alive connections (which the old workers close too).
        path = "/x?cc=max-age%3D60" if isinstance(conn, _Https) else "/x?cc=no-store"
        conn.request("GET", path, headers={"Host": HOST})
        r = conn.getresponse()
        r.read()
        return r.status

    def _run(self, tls: bool) -> None:
        conn, used = self._connect(tls), False
        while not self.stop.is_set():
            try:
                try:
                    status = self._once(conn)
                except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                    if not used:
                        raise
                    conn.close()  # closed by a reload while idle: once more, on a new one
                    conn = self._connect(tls)
                    status = self._once(conn)
                used = True
                with self.lock:
                    if status == 200:
                        self.ok += 1
                    else:
                        self.failures.append(f"status {status}")
            except Exception as exc:  # a failure: counted, then a new connection
                with self.lock:
                    self.failures.append(repr(exc))
                conn.close()
                conn, used = self._connect(tls), False
        conn.close()

    def __enter__(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(30)


def test_no_request_fails_during_reloads_under_load(origin: Origin) -> None:
    ca, cert = make_certs([HOST])
    with running_edge() as edge:
        edge.apply(_config(origin, cert, 100))
        with Load(edge, ca) as load:
            time.sleep(0.3)
            for i in range(RELOADS):
                result = edge.apply(_config(origin, cert, 200 + i))
                assert result.changed  # a new release each time: a reload
            time.sleep(0.3)
        assert load.failures == []
        assert load.ok > RELOADS * 10


def _leaf(edge: Edge, name: str) -> str | None:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    assert edge.local.https_port is not None
    try:
        with (
            socket.create_connection(("127.0.0.1", edge.local.https_port), timeout=2) as raw,
            ctx.wrap_socket(raw, server_hostname=name) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
    except (ssl.SSLError, OSError) as exc:
        return f"error {exc!r}"
    return hashlib.sha256(der or b"").hexdigest()


def _fingerprint(cert: CertSpec) -> str:
    der = ssl.PEM_cert_to_DER_cert(
        cert.cert_pem.split("-----END CERTIFICATE-----")[0] + "-----END CERTIFICATE-----\n"
    )
    return hashlib.sha256(der).hexdigest()


def test_a_client_never_sees_an_older_certificate_after_a_newer_one(origin: Origin) -> None:
    """A name's first certificate and each renewal: handshakes in a loop, while the edge
    applies the change, see the old certificate, then the new one, and never the old again
    (the workers of the previous configuration, which still accept for a moment after the
    reload, serve the new certificate too).

    Renewals keep their key, as the control plane's do. The first certificate cannot keep the
    default one's: nginx 1.22 opens a name's link twice per handshake (chain, then key), and a
    handshake between the two opens of that one swap fails with an internal-error alert
    (docs/performance.md, "Reloads"). Such a failure is allowed there and nowhere else."""
    key = ec.generate_private_key(ec.SECP256R1())
    certs = [make_certs([HOST], key)[1] for _ in range(4)]
    with running_edge() as edge:
        edge.apply(_config(origin, None, 0))  # the site is served before its certificate
        default = _leaf(edge, HOST)
        order = [default] + [_fingerprint(c) for c in certs]
        seen: list[tuple[float, float, str | None]] = []  # (start, end, leaf or error)
        first: list[float] = []  # the first certificate's apply: start, end
        stop = threading.Event()

        def shake() -> None:
            while not stop.is_set():
                start = time.monotonic()
                leaf = _leaf(edge, HOST)
                seen.append((start, time.monotonic(), leaf))

        thread = threading.Thread(target=shake, daemon=True)
        thread.start()
        try:
            for i, cert in enumerate(certs):
                time.sleep(0.2)
                began = time.monotonic()
                # with a change of the configuration too: the certificate comes with a reload
                assert edge.apply(_config(origin, cert, 100 + i)).changed
                if i == 0:
                    first[:] = [began, time.monotonic()]
            time.sleep(0.2)
        finally:
            stop.set()
            thread.join(10)

        def key_swap(start: float, end: float, leaf: str | None) -> bool:
            return (
                leaf is not None
                and "TLSV1_ALERT_INTERNAL_ERROR" in leaf
                and first[0] <= end
                and start <= first[1]
            )

        shakes = [leaf for start, end, leaf in seen if not key_swap(start, end, leaf)]
        assert len(shakes) >= len(seen) - 1, "more than one handshake failed at the key swap"
        assert not [s for s in shakes if s not in order], "a handshake failed or got another cert"
        ranks = [order.index(s) for s in shakes]
        assert ranks == sorted(ranks), "an older certificate after a newer one"
        assert ranks[-1] == len(certs)


def _status(port: int | None, host: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/", headers={"Host": host})
        return conn.getresponse().status
    finally:
        conn.close()


def _parallel_statuses(port: int | None, host: str, n: int) -> list[int]:
    """The statuses of ``n`` requests on ``n`` new connections opened at once."""
    with concurrent.futures.ThreadPoolExecutor(n) as pool_:
        return list(pool_.map(lambda _: _status(port, host), range(n)))


def test_when_an_apply_returns_no_new_connection_reaches_the_previous_release(
    origin: Origin,
) -> None:
    """The engine stops the previous workers itself as soon as a new one runs (instead of
    nginx's master, 100 ms later): when ``apply`` returns, connections opened at once, in
    parallel, are all answered by the new release (a name served, then not, then again)."""
    site = SiteSpec(id="p1", domains=(HOST,), pool="origin.p1")
    flip = SiteSpec(id="p2", domains=("flip.test",), pool="origin.p1")
    pools = [pool("origin.p1", backend(origin))]
    with running_edge() as edge:
        for i in range(12):
            served = i % 2 == 0
            assert edge.apply(edge_config([site, flip] if served else [site], pools)).changed
            statuses = _parallel_statuses(edge.local.http_port, "flip.test", 8)
            assert statuses == [200 if served else 404] * 8, (i, statuses)
