"""Domains: names a project's application is served at, and whose zone Edgeplane hosts.

Names are stored as IDNA 2008 A-labels (UTS 46 mapping: ``Bücher.example`` becomes
``xn--bcher-kva.example``) and shown with their U-labels too. A bare public suffix (``co.uk``,
``github.io``; the Public Suffix List, private section included, shipped with the
``publicsuffixlist`` package and read offline) is refused: nobody owns it. Names under the
reserved top-level domains of RFC 2606 / 6761 (``test``, ``example``, ``localhost``,
``invalid``, ``internal``, ``home.arpa``, and ``example.com`` / ``.net`` / ``.org``) cannot be
delegated in the world's DNS, so their ownership cannot be proved and is not asked for: they
are verified at once, as local names.
"""

from __future__ import annotations

import functools
import re
from datetime import datetime
from typing import Annotated, Literal

import idna
from pydantic import AfterValidator, Field

from edgeplane.model.certificates import Certificate
from edgeplane.model.common import Bool, Input, Output, Text
from edgeplane.model.dns_records import DNSRecordOut
from edgeplane.model.enums import Environment, RegionCode, RegionType

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
RESERVED_SUFFIXES = (
    "test",
    "example",
    "localhost",
    "invalid",
    "internal",
    "home.arpa",
    "example.com",
    "example.net",
    "example.org",
)
VerificationMethod = Literal["dns", "file", "email"]


@functools.lru_cache(maxsize=1)
def _psl() -> object:
    from publicsuffixlist import PublicSuffixList

    return PublicSuffixList()


def is_public_suffix(name: str) -> bool:
    return bool(_psl().is_public(name))  # type: ignore[attr-defined]


def registrable_domain(name: str) -> str | None:
    """The name's registrable domain (public suffix plus one label), None for a suffix."""
    value = _psl().privatesuffix(name)  # type: ignore[attr-defined]
    return str(value) if value else None


def is_reserved(name: str) -> bool:
    """Under a reserved top-level name (no delegation possible, nothing to verify)."""
    return any(name == s or name.endswith("." + s) for s in RESERVED_SUFFIXES)


def display_name(name: str) -> str:
    """The name with U-labels (what people read)."""
    if name.isascii() and "xn--" not in name and name == name.lower():
        return name  # what idna would answer (or refuse, leaving it as is), 20x faster
    try:
        return idna.decode(name)
    except idna.IDNAError:
        return name


def normalise_domain(value: str) -> str:
    """The domain in canonical form (IDNA A-labels, lower case, no trailing dot)."""
    text = value.strip().rstrip(".").lower()
    if not text:
        raise ValueError("must not be empty")
    if "*" in text:
        raise ValueError(
            "a wildcard is not a domain: add the zone (e.g. example.com) and put a '*' record "
            "in it; wildcard certificates come with DNS-01"
        )
    if len(text) > 253:
        raise ValueError("is longer than 253 characters")
    try:
        ascii_name = idna.encode(text, uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        raise ValueError(f"is not a valid domain name ({exc})") from None
    if len(ascii_name) > 253:
        raise ValueError("is longer than 253 characters")
    labels = ascii_name.split(".")
    if len(labels) < 2:
        raise ValueError("needs at least two labels, e.g. example.com or app.localhost")
    for label in labels:
        if not _LABEL.match(label):
            raise ValueError(
                f"label {label!r} must be 1-63 letters, digits or '-', not starting or "
                "ending with '-'"
            )
    if labels[-1].isdigit():
        raise ValueError("is an IP address, not a domain name")
    if not is_reserved(ascii_name) and is_public_suffix(ascii_name):
        raise ValueError(
            f"{ascii_name} is a public suffix (anyone can register names under it); "
            f"add a domain under it, e.g. yourname.{ascii_name}"
        )
    return ascii_name


DomainName = Annotated[
    str,
    AfterValidator(normalise_domain),
    Field(description="a domain name, e.g. www.example.com or app.localhost", max_length=300),
]


class DomainCreate(Input):
    domain: DomainName
    auto_configure: Bool = Field(
        True, description="apex and www answered by the edge, CAA for the CA, verification TXT"
    )
    environment: Environment | None = None
    dnssec: Bool = Field(False, description="sign the zone (DS records in the domain status)")
    locked: Bool = Field(False, description="refuse deletion until unlocked")


class DomainUpdate(Input):
    """``PATCH /domains/{domain}``: the switches a domain has."""

    dnssec: Bool | None = None
    locked: Bool | None = None


class Verification(Output):
    """How to prove ownership, and where the proof stands."""

    state: Literal["verified", "pending", "failed"]
    method: str | None  # the method that verified it (or was tried last); "reserved"
    token: str
    expires_at: datetime | None  # the token's
    dns_record: DNSRecordOut  # the TXT to publish at the domain's current DNS provider
    file_url: str  # where the edge of the domain must serve the token (method "file")
    file_content: str
    email_addresses: list[str]  # where a code goes (method "email")
    email_sent_at: datetime | None = None
    last_checked_at: datetime | None = None
    last_result: str | None = None
    failures: int = 0  # consecutive failed re-checks of a verified domain


class Domain(Output):
    domain: str  # A-labels
    display_name: str  # U-labels
    project: str
    environment: Environment
    status: str  # active (verified: served by the edge) / pending (awaiting verification)
    apex: bool  # a registrable domain (example.com), not a subdomain (shop.example.com)
    verified_at: datetime | None
    auto_configure: bool
    locked: bool
    dnssec: bool
    verification: Verification
    certificate: Certificate | None  # the newest valid certificate
    created_at: datetime
    updated_at: datetime


class VerifyRequest(Input):
    """``POST /domains/{domain}/verify``. For ``email``: without ``code`` a code is sent to
    the domain's admin addresses; with it, the code is checked."""

    method: VerificationMethod = "dns"
    code: Text | None = Field(None, max_length=32)


class VerificationResult(Output):
    verified: bool
    method: str
    reason: str
    dns_records: list[DNSRecordOut]  # what to publish for DNS verification
    domain_config: Domain


class NodeZone(Output):
    node: str
    name: str
    region: str  # the node's location
    region_code: RegionCode | None = None  # its parents
    region_type: RegionType | None = None
    live: bool  # heartbeat fresh and healthy: in GeoDNS answers
    serial: int | None  # the zone's SOA serial the node serves
    in_sync: bool
    error: str | None = None


class DnssecStatus(Output):
    enabled: bool
    ds: list[str]  # DS records for the registrar (presentation form)
    dnskey: list[str]


class DomainStatus(Output):
    """``GET /domains/{domain}/status``: verification, DNS, zone serials, certificate."""

    domain: str
    display_name: str
    status: str
    verification: Verification
    nameservers: list[str]  # what the zone's NS records name (the edge nodes)
    delegated_to: list[str] | None  # the NS the world's DNS gives for the domain
    points_to_edgeplane: bool | None  # None: not checked yet
    dns_checked_at: datetime | None
    dns_check_error: str | None = None
    serial: int  # the SOA serial the zone should have
    nodes: list[NodeZone]
    dnssec: DnssecStatus
    locked: bool
    certificate: Certificate | None
    certificate_status: str  # active / expired / none


class DomainAdded(Output):
    """The answer to ``POST /api/v1/infrastructure/domains``."""

    domain_config: Domain
    verification_required: bool


class DomainList(Output):
    domains: list[Domain]
    next_cursor: str | None = None


class DomainCheck(Output):
    """The answer to ``POST /api/v1/infrastructure/domains?dry_run=true``: the name is valid
    and free, in the form it would be stored in; nothing was created."""

    domain: str  # A-labels (punycode)
    display_name: str  # U-labels
    apex: bool
    verification_required: bool  # False for reserved names (verified at once)
