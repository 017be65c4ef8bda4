"""What a probe of one edge node saw for one domain: plain frozen values, built by
``edgeplane.posture.probe`` (or by hand in tests) and read by the pure scorer.

``None`` means "could not be told" (the node did not answer, this client cannot offer that
protocol), never "no".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

PROTOCOLS: tuple[str, ...] = ("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")
DsState = Literal["published", "missing", "mismatch", "unknown"]


@dataclass(frozen=True)
class TlsSeen:
    """The TLS side: which protocol versions a handshake succeeded with, the TLS 1.2 ciphers
    and the groups (curves) the node accepted, the certificate it sent and whether it
    verified."""

    protocols: dict[str, bool | None] = field(default_factory=dict)  # PROTOCOLS -> accepted
    ciphers: tuple[str, ...] = ()  # TLS 1.2 and older cipher suites accepted (OpenSSL names)
    tls13_cipher: str | None = None
    groups: dict[str, bool | None] = field(default_factory=dict)  # curve -> accepted
    # The certificate: None when no handshake succeeded.
    verify_error: str | None = None  # None: trusted chain and names cover the domain
    not_after: datetime | None = None
    names: tuple[str, ...] = ()  # the leaf's DNS names
    issuer: str | None = None
    chain: tuple[str, ...] = ()  # subjects of the certificates sent, leaf first
    ocsp_url: str | None = None  # the responder the leaf names (None: it names none)
    stapled: bool | None = None  # an OCSP response came with the handshake
    error: str | None = None  # why no handshake succeeded at all

    @property
    def connected(self) -> bool:
        return self.not_after is not None


@dataclass(frozen=True)
class HttpSeen:
    """One response's status and headers (names lower-cased, every value kept in order)."""

    status: int | None = None
    headers: dict[str, tuple[str, ...]] = field(default_factory=dict)
    location: str | None = None
    error: str | None = None

    def values(self, name: str) -> tuple[str, ...]:
        return self.headers.get(name.lower(), ())


@dataclass(frozen=True)
class DnsSeen:
    """The node's DNS server's answers for the domain (CAA, DNSKEY and its signature) and
    what the world's resolvers say of the DS at the parent."""

    caa: tuple[str, ...] | None = None  # the CAA records' texts; None: not asked / no answer
    dnskey: bool | None = None
    signed: bool | None = None  # an RRSIG came with the DNSKEY answer
    ds: DsState = "unknown"
    error: str | None = None


@dataclass(frozen=True)
class NodeSeen:
    """One edge node's view of the domain."""

    node: str  # its name
    tls: TlsSeen = field(default_factory=TlsSeen)
    https: HttpSeen | None = None  # GET / over HTTPS (None: no HTTPS port)
    http: HttpSeen | None = None  # GET / over HTTP, not following redirects (None: no port)
    dns: DnsSeen | None = None  # None: the node has no DNS server


@dataclass(frozen=True)
class DomainSeen:
    """Everything the scorer reads for one domain: the probes of its live edge nodes, the
    WAF mode of its project's CDN config, and when it was looked at."""

    domain: str
    at: datetime
    nodes: tuple[NodeSeen, ...] = ()
    waf_mode: str = "off"  # off / detect / block (the CDN config's security.waf.mode)
    dnssec_wanted: bool = False  # the domain is configured to be signed
