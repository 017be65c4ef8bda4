"""The health checks of private origins: TLS as nginx speaks it to them, and the public-key
pins nginx cannot check.

A backend of a pool with ``tls`` (``protocol.origin_tls.OriginTlsSpec``) is checked over a TLS
connection made like nginx's: the project's client certificate presented, the origin's chain
verified against the pinned CA (``verify`` ``ca``, or ``pin`` with a CA as well) and the name
checked when one is known (``server_name``, else the check's ``host``; nginx checks the
request's host, which a check does not have). With ``verify`` ``pin``, the SHA-256 of the
SubjectPublicKeyInfo of every certificate the origin presented is compared with the pins
(one match is enough, as HPKP: a leaf key, or the key of a CA of its chain): a mismatch takes
the backend out at once (no ``unhealthy_threshold``: it is not a fault that may pass), with
the reason ``certificate does not match the pinned key ...``, and a pinned backend is out of
rotation until a check has seen a pinned key (fail closed). A chain that the pinned CA does not
sign takes it out at once too (``certificate not trusted: ...``; nginx refuses it anyway).

Then the HTTP check itself (a ``GET`` of the check's path, its status against
``expected_status``) runs on the same connection; for a ``tcp`` check, or a verifying pool
without a health check (which gets ``TLS_CHECK``), the handshake is the check.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from edgeplane.protocol.config import BackendSpec, CertSpec, HealthCheckSpec
from edgeplane.protocol.origin_tls import OriginTlsSpec, spki_pin_of_der

# The check of a verifying pool (CA or pins) that has no health check of its own: a TLS
# handshake (the chain verified, the pins compared) every 5 s, one failure out, one success in.
TLS_CHECK = HealthCheckSpec(
    protocol="tcp", interval_s=5.0, timeout_s=2.0, healthy_threshold=1, unhealthy_threshold=1
)
MISMATCH = "certificate does not match the pinned key"

if TYPE_CHECKING:  # cryptography is loaded only when a pin is compared (its native code is
    from cryptography import x509  # 8 MiB an agent keeps otherwise: test_agent_imports)

CertSource = Callable[[str], CertSpec]


@dataclass(frozen=True)
class TlsOutcome:
    """A check's result: ``reason`` None when it passed; ``fatal`` when the origin presented a
    certificate the pool does not accept (a key not pinned, a chain not from the pinned CA):
    not a fault that may pass, the backend goes out at once."""

    reason: str | None
    fatal: bool = False


def _subject(cert: x509.Certificate) -> str:
    try:
        return cert.subject.rfc4514_string()
    except ValueError:
        return "?"


def pin_mismatch(ders: list[bytes], pins: tuple[str, ...]) -> str | None:
    """Why the chain ``ders`` (DER, the leaf first) matches none of ``pins``; None when one
    matches."""
    from cryptography import x509

    if not ders:
        return f"{MISMATCH}: the origin presented no certificate"
    chain = [x509.load_der_x509_certificate(d) for d in ders]
    presented = [spki_pin_of_der(d) for d in ders]
    if any(p in pins for p in presented):
        return None
    return (
        f"{MISMATCH} {', '.join(pins)}: the origin presented {presented[0]} "
        f"({_subject(chain[0])})"
        + (f" and its chain {', '.join(presented[1:])}" if len(presented) > 1 else "")
    )


def check_name(tls: OriginTlsSpec, check: HealthCheckSpec) -> str | None:
    """The name a check sends in SNI and verifies: ``server_name``, else the check's host."""
    return tls.server_name or check.host


def make_context(tls: OriginTlsSpec, name: str | None, client: CertSpec | None) -> ssl.SSLContext:
    """An SSL context as nginx's for this pool (TLS 1.2+, the client certificate, the CA)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if tls.verify in ("ca", "pin") and tls.ca_pem:
        ctx.load_verify_locations(cadata=tls.ca_pem)
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.check_hostname = name is not None
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if client is not None:
        _load_client(ctx, client)
    return ctx


def _load_client(ctx: ssl.SSLContext, cert: CertSpec) -> None:
    """``ssl`` loads a key only from a file: a private one (0600), removed at once."""
    fd, path = tempfile.mkstemp(prefix="edgeplane-origin-client-", suffix=".pem")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(cert.key_pem if cert.key_pem.endswith("\n") else cert.key_pem + "\n")
            f.write(cert.cert_pem)
        ctx.load_cert_chain(path)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)


def _presented(sslobj: ssl.SSLObject) -> list[bytes]:
    """The certificates the origin sent (DER), the leaf first (unverified)."""
    inner = getattr(sslobj, "_sslobj", None)
    chain_of = getattr(inner, "get_unverified_chain", None)
    if chain_of is not None:  # Python 3.10-3.12 (public from 3.13)
        try:
            der_encoding = ssl._ssl.ENCODING_DER  # type: ignore[attr-defined]
            return [c.public_bytes(der_encoding) for c in chain_of() or []]
        except (AttributeError, ValueError, TypeError):
            pass
    der = sslobj.getpeercert(binary_form=True)
    return [der] if der else []


def _tls_reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        message = exc.verify_message or str(exc)
        return f"certificate not trusted: {message} (not from the pinned CA, or another name)"[:300]
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake failed: {exc.reason or exc}"[:300]
    return f"connect failed: {str(exc) or type(exc).__name__}"[:300]


class OriginTlsProber:
    """Checks over TLS as nginx speaks it to private origins; one SSL context per pool
    setting (and client certificate), made on first use."""

    def __init__(self, certs: CertSource | None = None) -> None:
        self._certs = certs
        self._contexts: dict[tuple[OriginTlsSpec, str | None], ssl.SSLContext] = {}

    def context(self, tls: OriginTlsSpec, name: str | None) -> ssl.SSLContext:
        key = (tls, name)
        ctx = self._contexts.get(key)
        if ctx is None:
            client = None
            if tls.client_cert:
                if self._certs is None:
                    raise LookupError("no source of client certificates")
                client = self._certs(tls.client_cert)
            if len(self._contexts) > 256:
                self._contexts.clear()
            ctx = self._contexts[key] = make_context(tls, name, client)
        return ctx

    async def probe(
        self,
        backend: BackendSpec,
        check: HealthCheckSpec,
        tls: OriginTlsSpec,
        expected: Callable[[int], bool],
    ) -> TlsOutcome:
        """One check (the caller bounds its time)."""
        name = check_name(tls, check)
        try:
            ctx = self.context(tls, name)
        except (LookupError, OSError, ssl.SSLError, ValueError) as exc:
            return TlsOutcome(f"client certificate not loaded: {exc}"[:300])
        host = backend.host.strip("[]")
        try:
            reader, writer = await asyncio.open_connection(
                host, backend.port, ssl=ctx, server_hostname=name
            )
        except (OSError, ssl.SSLError) as exc:
            if isinstance(exc, ConnectionRefusedError):
                return TlsOutcome("connect refused")
            return TlsOutcome(_tls_reason(exc), isinstance(exc, ssl.SSLCertVerificationError))
        try:
            if tls.pinned:
                sslobj = writer.get_extra_info("ssl_object")
                why = pin_mismatch(_presented(sslobj), tls.pins) if sslobj else MISMATCH
                if why is not None:
                    return TlsOutcome(why, fatal=True)
            if check.protocol == "tcp":
                return TlsOutcome(None)
            return TlsOutcome(await _http_status(reader, writer, backend, check, expected))
        finally:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()


async def _http_status(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    backend: BackendSpec,
    check: HealthCheckSpec,
    expected: Callable[[int], bool],
) -> str | None:
    host = check.host or f"{backend.host}:{backend.port}"
    writer.write(
        f"GET {check.path} HTTP/1.1\r\nHost: {host}\r\n"
        "User-Agent: edgeplane-health-check\r\nConnection: close\r\n\r\n".encode()
    )
    try:
        await writer.drain()
        line = await reader.readline()
    except (OSError, ssl.SSLError) as exc:
        return _tls_reason(exc)
    parts = line.split()
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        return "no HTTP answer" if not line else f"not an HTTP answer: {line[:60]!r}"
    status = int(parts[1])
    if expected(status):
        return None
    return f"status {status} (expected {check.expected_status})"
