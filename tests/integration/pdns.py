"""A throwaway PowerDNS for tests, zones to feed it and dnspython queries to ask it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import dns.edns
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset

from edgeplane.node.powerdns.process import PdnsProcess
from edgeplane.protocol.config import DnssecKeySpec, RRSetSpec, ZoneSpec


@contextlib.contextmanager
def running_pdns(tmp_path: Path, name: str = "pdns", **kw: Any) -> Iterator[PdnsProcess]:
    """A started ``PdnsProcess`` under ``tmp_path/name``, stopped even when the test fails."""
    process = PdnsProcess(tmp_path / name, **kw)
    try:
        process.start()
        yield process
    finally:
        process.stop()


def soa(zone: str, serial: int) -> str:
    return f"ns1.{zone} hostmaster.{zone} {serial} 3600 600 604800 30"


def zone_spec(
    name: str,
    serial: int,
    records: Mapping[tuple[str, str], Sequence[str]] | None = None,
    *,
    ttl: int = 60,
    keys: Sequence[DnssecKeySpec] = (),
    dnssec: bool | None = None,
) -> ZoneSpec:
    """A zone with SOA and NS at the apex plus ``records``: (relative name or "@", type)."""
    rrsets = {
        (name, "SOA"): RRSetSpec(name=name, type="SOA", ttl=300, records=(soa(name, serial),)),
        (name, "NS"): RRSetSpec(name=name, type="NS", ttl=300, records=(f"ns1.{name}",)),
    }
    for (label, rtype), contents in (records or {}).items():
        owner = name if label == "@" else f"{label}.{name}"
        rrsets[(owner, rtype)] = RRSetSpec(
            name=owner, type=rtype, ttl=ttl, records=tuple(sorted(contents))
        )
    return ZoneSpec(
        name=name,
        serial=serial,
        dnssec=bool(keys) if dnssec is None else dnssec,
        dnssec_keys=tuple(keys),
        rrsets=tuple(rrsets[k] for k in sorted(rrsets)),
    )


def query(
    process: PdnsProcess,
    name: str,
    rtype: str = "A",
    *,
    tcp: bool = False,
    ecs: str | None = None,
    dnssec: bool = False,
) -> dns.message.Message:
    options: list[dns.edns.Option] = []
    if ecs is not None:
        options.append(dns.edns.ECSOption(ecs, 56 if ":" in ecs else 24))
    q = dns.message.make_query(
        name, rtype, use_edns=0, options=options, want_dnssec=dnssec, payload=4096
    )
    send = dns.query.tcp if tcp else dns.query.udp
    return send(q, process.dns_address, port=process.dns_port, timeout=5.0)


def answers(process: PdnsProcess, name: str, rtype: str = "A", **kw: Any) -> list[str]:
    """The sorted contents of the answer to ``name``/``rtype`` (RRSIGs left out)."""
    msg = query(process, name, rtype, **kw)
    want = dns.rdatatype.from_text(rtype)
    return sorted(r.to_text() for rrset in msg.answer if rrset.rdtype == want for r in rrset)


def rcode(process: PdnsProcess, name: str, rtype: str = "A") -> str:
    return dns.rcode.to_text(query(process, name, rtype).rcode())


def rrset_of(msg: dns.message.Message, rtype: str, covers: str | None = None) -> dns.rrset.RRset:
    want = dns.rdatatype.from_text(rtype)
    cov = dns.rdatatype.from_text(covers) if covers else dns.rdatatype.NONE
    for rrset in msg.answer:
        if rrset.rdtype == want and rrset.covers == cov:
            return rrset
    raise AssertionError(f"no {rtype} in the answer:\n{msg}")
