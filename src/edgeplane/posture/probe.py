"""The probe: looks at one domain on one edge node from the outside, as a client would.

- a TLS handshake per protocol version (Python's ``ssl``, security level 0 so that this
  client can still offer TLS 1.0 and 1.1), the TLS 1.2 cipher suites the node accepts
  (offer every suite, note the one chosen, offer the rest again), the groups (curves) it
  accepts, a verified handshake (the system's roots, the internal CA's and any given);
- one handshake through pyOpenSSL asking for an OCSP staple (Python's ``ssl`` cannot), which
  also gives the certificates sent;
- ``GET /`` over HTTPS (headers) and over HTTP (the redirect), not following redirects;
- CAA and DNSKEY (with DNSSEC records) from the node's own DNS server, DS from the world's
  resolvers (the parent zone's answer: "unknown" when they cannot be reached).

Every network call has a short timeout; nothing here raises for a node that does not answer:
what could not be told is ``None`` / ``unknown`` in the result.
"""

from __future__ import annotations

import contextlib
import ipaddress
import select
import socket
import ssl
import warnings
from dataclasses import dataclass
from datetime import UTC

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import httpx
from cryptography import x509
from cryptography.x509.oid import AuthorityInformationAccessOID, NameOID

from edgeplane.posture.observed import PROTOCOLS, DnsSeen, DsState, HttpSeen, NodeSeen, TlsSeen

VERSIONS: dict[str, ssl.TLSVersion] = {
    "TLSv1": ssl.TLSVersion.TLSv1,
    "TLSv1.1": ssl.TLSVersion.TLSv1_1,
    "TLSv1.2": ssl.TLSVersion.TLSv1_2,
    "TLSv1.3": ssl.TLSVersion.TLSv1_3,
}
GROUPS: tuple[str, ...] = ("X25519", "prime256v1", "secp384r1", "X448", "secp521r1")
MAX_CIPHER_ROUNDS = 40
_ALL = "ALL:COMPLEMENTOFALL:@SECLEVEL=0"


@dataclass(frozen=True)
class Target:
    """Where and what to probe: a domain on one node."""

    domain: str
    node: str  # the node's name
    address: str
    https_port: int | None
    http_port: int | None = None
    dns_port: int | None = None
    trust_pem: str = ""  # roots to trust besides the system's (the internal CA's, ...)
    resolvers: tuple[str, ...] = ()  # "host:port" of recursive resolvers, for the DS
    expected_ds: tuple[str, ...] = ()  # the DS records the domain's key gives
    timeout_s: float = 3.0


def _family(address: str) -> int:
    try:
        return socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
    except ValueError:
        return socket.AF_INET


def _connect(t: Target) -> socket.socket:
    assert t.https_port is not None
    return socket.create_connection((t.address, t.https_port), timeout=t.timeout_s)


def _context(low: ssl.TLSVersion, high: ssl.TLSVersion, ciphers: str = _ALL) -> ssl.SSLContext:
    with warnings.catch_warnings():  # TLS 1.0 / 1.1 are deprecated: that is what is probed
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.minimum_version = low
        ctx.maximum_version = high
    ctx.set_ciphers(ciphers)
    return ctx


def _handshake(t: Target, ctx: ssl.SSLContext) -> tuple[str | None, str | None]:
    """(the version, the cipher) of a handshake; (None, None) when the node refused it.
    OSError when it could not be tried (no connection)."""
    with _connect(t) as sock:
        try:
            with ctx.wrap_socket(sock, server_hostname=t.domain) as tls:
                cipher = tls.cipher()
                return tls.version(), cipher[0] if cipher else None
        except ssl.SSLError as exc:
            if "NO_PROTOCOLS_AVAILABLE" in str(exc) or "no protocols available" in str(exc):
                raise _CannotOffer() from None
            return None, None
        except (ConnectionResetError, BrokenPipeError, TimeoutError):
            return None, None


class _CannotOffer(Exception):
    """This client's OpenSSL cannot offer the protocol version asked for."""


def _protocols(t: Target) -> dict[str, bool | None]:
    out: dict[str, bool | None] = {}
    for name in PROTOCOLS:
        version = VERSIONS[name]
        try:
            got, _c = _handshake(t, _context(version, version))
            out[name] = got is not None
        except _CannotOffer:
            out[name] = None
    return out


def _tls12_candidates() -> list[str]:
    ctx = _context(ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_2)
    return [c["name"] for c in ctx.get_ciphers() if c["protocol"] != "TLSv1.3"]


def _ciphers(t: Target, top: ssl.TLSVersion) -> list[str]:
    """The TLS 1.2 (or older) suites accepted, in the order the node chose them."""
    remaining = _tls12_candidates()
    accepted: list[str] = []
    for _ in range(MAX_CIPHER_ROUNDS):
        if not remaining:
            break
        try:
            ctx = _context(ssl.TLSVersion.TLSv1, top, ":".join(remaining) + ":@SECLEVEL=0")
        except ssl.SSLError:
            break
        try:
            _v, cipher = _handshake(t, ctx)
        except _CannotOffer:
            break
        if cipher is None or cipher not in remaining:
            break
        accepted.append(cipher)
        remaining.remove(cipher)
    return accepted


def _groups(t: Target, top: ssl.TLSVersion) -> dict[str, bool | None]:
    out: dict[str, bool | None] = {}
    for group in GROUPS:
        try:
            ctx = _context(ssl.TLSVersion.TLSv1_2, top, "ECDHE:@SECLEVEL=0")
            ctx.set_ecdh_curve(group)
        except (ssl.SSLError, ValueError):
            out[group] = None  # this client does not know the group
            continue
        try:
            version, _c = _handshake(t, ctx)
            out[group] = version is not None
        except _CannotOffer:
            out[group] = None
    return out


def _verify(t: Target) -> str | None:
    """None when the chain verifies (system roots + ``trust_pem``) and names the domain;
    else OpenSSL's reason."""
    ctx = ssl.create_default_context()
    if t.trust_pem.strip():
        ctx.load_verify_locations(cadata=t.trust_pem)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        with _connect(t) as sock, ctx.wrap_socket(sock, server_hostname=t.domain):
            return None
    except ssl.SSLCertVerificationError as exc:
        return str(exc.verify_message or exc.reason or exc)
    except ssl.SSLError as exc:
        return f"handshake failed: {exc.reason or exc}"


def _wait(sock: socket.socket, write: bool, timeout: float) -> None:
    r, w, _x = select.select([] if write else [sock], [sock] if write else [], [], timeout)
    if not r and not w:
        raise TimeoutError("the TLS handshake timed out")


def _openssl_view(t: Target) -> tuple[list[x509.Certificate], bool]:
    """The certificates sent (leaf first) and whether an OCSP response was stapled."""
    from OpenSSL import SSL

    got: list[bytes] = []
    ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
    ctx.set_cipher_list(b"ALL:@SECLEVEL=0")

    def staple(_conn: object, data: bytes, _x: object) -> bool:
        got.append(data)
        return True  # the handshake goes on whatever came (the scorer judges it)

    ctx.set_ocsp_client_callback(staple)
    with _connect(t) as sock:
        sock.setblocking(False)
        conn = SSL.Connection(ctx, sock)
        conn.set_tlsext_host_name(t.domain.encode("idna"))
        conn.request_ocsp()
        conn.set_connect_state()
        while True:
            try:
                conn.do_handshake()
                break
            except SSL.WantReadError:
                _wait(sock, False, t.timeout_s)
            except SSL.WantWriteError:
                _wait(sock, True, t.timeout_s)
        chain = [c.to_cryptography() for c in conn.get_peer_cert_chain() or []]
        with contextlib.suppress(SSL.Error, OSError):
            conn.shutdown()
    return chain, bool(got and got[0])


def _names(cert: x509.Certificate) -> tuple[str, ...]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return ()
    return tuple(san.value.get_values_for_type(x509.DNSName))


def _ocsp_url(cert: x509.Certificate) -> str | None:
    try:
        aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess)
    except x509.ExtensionNotFound:
        return None
    for desc in aia.value:
        if desc.access_method == AuthorityInformationAccessOID.OCSP:
            return str(desc.access_location.value)
    return None


def _cn(name: x509.Name) -> str:
    cns = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(cns[0].value) if cns else name.rfc4514_string()


def probe_tls(t: Target) -> TlsSeen:
    if t.https_port is None:
        return TlsSeen(error="the node serves no HTTPS")
    try:
        protocols = _protocols(t)
    except OSError as exc:
        return TlsSeen(protocols=dict.fromkeys(PROTOCOLS), error=f"cannot connect: {exc}")
    offered = [VERSIONS[p] for p, ok in protocols.items() if ok]
    if not offered:
        return TlsSeen(protocols=protocols, error="no TLS handshake succeeded")
    top = max(offered)
    try:
        older = [v for v in offered if v <= ssl.TLSVersion.TLSv1_2]
        ciphers = _ciphers(t, max(older)) if older else []
        tls13 = None
        if ssl.TLSVersion.TLSv1_3 in offered:
            _v, tls13 = _handshake(t, _context(ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_3))
        groups = _groups(t, top)
        verify_error = _verify(t)
        chain, stapled = _openssl_view(t)
    except (OSError, _CannotOffer) as exc:
        return TlsSeen(protocols=protocols, error=f"the node stopped answering: {exc}")
    except Exception as exc:  # pyOpenSSL's errors: the handshake failed
        return TlsSeen(protocols=protocols, error=f"handshake failed: {exc}")
    if not chain:
        return TlsSeen(protocols=protocols, error="no certificate was sent")
    leaf = chain[0]
    return TlsSeen(
        protocols=protocols,
        ciphers=tuple(ciphers),
        tls13_cipher=tls13,
        groups=groups,
        verify_error=verify_error,
        not_after=leaf.not_valid_after_utc.astimezone(UTC),
        names=_names(leaf),
        issuer=_cn(leaf.issuer),
        chain=tuple(_cn(c.subject) for c in chain),
        ocsp_url=_ocsp_url(leaf),
        stapled=stapled,
    )


def _url(scheme: str, address: str, port: int) -> str:
    host = f"[{address}]" if _family(address) == socket.AF_INET6 else address
    return f"{scheme}://{host}:{port}/"


def _get(t: Target, scheme: str, port: int) -> HttpSeen:
    """``GET /`` with the domain as Host (and SNI): status and headers, body unread."""
    extensions = {"sni_hostname": t.domain} if scheme == "https" else {}
    try:
        with (
            httpx.Client(verify=False, timeout=t.timeout_s, follow_redirects=False) as client,
            client.stream(
                "GET",
                _url(scheme, t.address, port),
                headers={"Host": t.domain, "User-Agent": "edgeplane-security-score"},
                extensions=extensions,
            ) as response,
        ):
            headers: dict[str, tuple[str, ...]] = {}
            for name, value in response.headers.multi_items():
                headers[name.lower()] = (*headers.get(name.lower(), ()), value)
            return HttpSeen(
                status=response.status_code,
                headers=headers,
                location=response.headers.get("location"),
            )
    except httpx.HTTPError as exc:
        return HttpSeen(error=f"{type(exc).__name__}: {exc}")


def _ask(
    address: str, port: int, query: dns.message.Message, timeout: float
) -> dns.message.Message:
    """One query over UDP (TCP when truncated), on a connected socket: a closed port answers
    "refused" at once instead of costing the whole timeout."""
    with socket.socket(_family(address), socket.SOCK_DGRAM) as sock:
        sock.connect((address, port))
        sock.setblocking(False)
        answer = dns.query.udp(query, address, port=port, timeout=timeout, sock=sock)
    if answer.flags & dns.flags.TC:
        answer = dns.query.tcp(query, address, port=port, timeout=timeout)
    return answer


def _ds_state(t: Target) -> DsState:
    """The DS at the parent, as the first resolver that answers tells it."""
    query = dns.message.make_query(t.domain, "DS")
    query.flags |= dns.flags.RD
    expected = {" ".join(d.upper().split()) for d in t.expected_ds}
    for resolver in t.resolvers:
        host, _, port = resolver.rpartition(":")
        host = host.strip("[]") or resolver
        try:
            answer = _ask(host, int(port or 53), query, min(t.timeout_s, 1.5))
        except (dns.exception.DNSException, OSError, ValueError):
            continue
        if answer.rcode() == dns.rcode.NXDOMAIN:
            return "missing"
        if answer.rcode() != dns.rcode.NOERROR:
            continue
        found = [
            " ".join(rd.to_text().upper().split())
            for rrset in answer.answer
            if rrset.rdtype == dns.rdatatype.DS
            for rd in rrset
        ]
        if not found:
            return "missing"
        return "published" if not expected or expected & set(found) else "mismatch"
    return "unknown"


def probe_dns(t: Target) -> DnsSeen | None:
    if t.dns_port is None:
        return None
    try:
        caa = _ask(t.address, t.dns_port, dns.message.make_query(t.domain, "CAA"), t.timeout_s)
        keys = _ask(
            t.address,
            t.dns_port,
            dns.message.make_query(t.domain, "DNSKEY", want_dnssec=True),
            t.timeout_s,
        )
    except (dns.exception.DNSException, OSError) as exc:
        return DnsSeen(error=f"the node's DNS server did not answer: {exc}")
    if caa.rcode() != dns.rcode.NOERROR:
        return DnsSeen(error=f"the node's DNS server answered {dns.rcode.to_text(caa.rcode())}")
    records = tuple(
        rd.to_text() for rrset in caa.answer if rrset.rdtype == dns.rdatatype.CAA for rd in rrset
    )
    dnskey = any(r.rdtype == dns.rdatatype.DNSKEY for r in keys.answer)
    signed = any(
        r.rdtype == dns.rdatatype.RRSIG and r.covers == dns.rdatatype.DNSKEY for r in keys.answer
    )
    ds: DsState = _ds_state(t) if dnskey and signed else "unknown"
    return DnsSeen(caa=records, dnskey=dnskey, signed=signed, ds=ds)


def probe(t: Target) -> NodeSeen:
    """Everything the scorer reads, from one node (never raises for a silent node)."""
    return NodeSeen(
        node=t.node,
        tls=probe_tls(t),
        https=_get(t, "https", t.https_port) if t.https_port else None,
        http=_get(t, "http", t.http_port) if t.http_port else None,
        dns=probe_dns(t),
    )
