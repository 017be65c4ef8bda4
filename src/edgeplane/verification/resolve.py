"""Looking a domain up the way the world sees it.

A recursive resolver (configurable; e.g. 1.1.1.1:53 in production, a local server in tests)
finds the zone cut and the addresses of the domain's name servers. The records themselves are
then asked from those delegated servers directly and without recursion, so no cache, forwarder
or split-horizon view answers for them. Every failure is a ``ResolutionError`` whose message
names the server asked and what went wrong.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import dns.exception
import dns.flags
import dns.inet
import dns.message
import dns.name
import dns.nameserver
import dns.query
import dns.rcode
import dns.rdata
import dns.rdatatype
import dns.resolver
import dns.rrset
from publicsuffixlist import PublicSuffixList

MAX_CNAME_HOPS = 8
"""How many CNAMEs ``Resolver.addresses`` follows before giving up on a loop."""


class ResolutionError(Exception):
    """A lookup failed; the message names the server asked and what went wrong."""


class NameNotFound(ResolutionError):
    """The name does not exist (NXDOMAIN)."""


NameServer = tuple[str, list[str]]
"""A delegated name server: its host name and the addresses it resolves to."""


@dataclass(frozen=True, slots=True)
class Answer:
    """What one delegated name server answered (rcode NOERROR, authoritative)."""

    server: str
    """The server as ``name (address)``, for messages."""
    address: str
    rrsets: tuple[dns.rrset.RRset, ...]
    """The answer section."""

    def records(self, name: str, rdtype: str) -> list[dns.rdata.Rdata]:
        """The records of ``rdtype`` owned by exactly ``name`` in the answer."""
        owner = dns.name.from_text(name)
        kind = dns.rdatatype.from_text(rdtype)
        return [
            rd
            for rrset in self.rrsets
            if rrset.name == owner and rrset.rdtype == kind
            for rd in rrset
        ]

    def cname(self, name: str) -> str | None:
        """The target of a CNAME owned by ``name`` in the answer, if any."""
        targets = self.records(name, "CNAME")
        return _text(targets[0].target) if targets else None  # type: ignore[attr-defined]


@functools.cache
def _psl() -> PublicSuffixList:
    return PublicSuffixList()  # the list bundled with the package; no network


def _text(name: dns.name.Name) -> str:
    return name.to_text(omit_final_dot=True).lower()


def normalize(domain: str) -> str:
    """``domain`` lower-cased, without the final dot, IDNs as A-labels."""
    raw = domain.strip().rstrip(".")
    if not raw:
        raise ResolutionError("the domain name is empty")
    try:
        return _text(dns.name.from_text(raw))
    except (dns.exception.DNSException, UnicodeError) as e:
        raise ResolutionError(f"{domain!r} is not a valid domain name ({e})") from None


def zone_candidates(domain: str) -> list[str]:
    """Where the zone cut of ``domain`` may be: the domain itself, then each parent, down to
    the registrable domain (one label below the public suffix)."""
    name = normalize(domain)
    registrable = _psl().privatesuffix(name)
    if registrable is None:
        raise ResolutionError(f"{name} is a public suffix, not a domain that can be owned")
    labels = name.split(".")
    keep = len(labels) - len(registrable.split(".")) + 1
    return [".".join(labels[i:]) for i in range(keep)]


def where(address: str, port: int) -> str:
    """``address`` for messages, with the port when it is not 53."""
    if port == 53:
        return address
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _failure(err: object) -> str:
    if err == "SERVFAIL":
        return "answered SERVFAIL (broken name servers or a DNSSEC validation failure)"
    if isinstance(err, str):  # an rcode the resolver gave up on
        return f"answered {err}"
    if isinstance(err, dns.exception.Timeout):
        return "timed out"
    if isinstance(err, ConnectionRefusedError):
        return "refused the connection"
    return str(err) or type(err).__name__


class Resolver:
    """Looks domains up through ``nameservers`` (recursive resolvers, as ``(ip, port)``) and
    their delegated name servers (asked on ``ns_port``)."""

    def __init__(
        self, nameservers: list[tuple[str, int]], timeout_s: float = 3.0, ns_port: int = 53
    ) -> None:
        if not nameservers:
            raise ValueError("at least one resolver is needed")
        for host, _port in nameservers:
            if not dns.inet.is_address(host):
                raise ValueError(f"resolver {host!r} must be an IP address")
        self.nameservers = list(nameservers)
        self.timeout_s = timeout_s
        self.ns_port = ns_port
        stub = dns.resolver.Resolver(configure=False)  # never /etc/resolv.conf
        stub.nameservers = [dns.nameserver.Do53Nameserver(h, p) for h, p in nameservers]
        stub.timeout = timeout_s
        stub.lifetime = timeout_s * len(nameservers)
        stub.cache = None
        self._stub = stub
        self._labels = {
            str(ns): f"resolver {where(h, p)}"
            for ns, (h, p) in zip(stub.nameservers, nameservers, strict=True)
        }

    def _resolvers(self) -> str:
        return ", ".join(where(h, p) for h, p in self.nameservers)

    def recursive(self, name: str, rdtype: str) -> dns.resolver.Answer:
        """Ask the recursive resolver; NODATA is an answer with no ``rrset``."""
        try:
            return self._stub.resolve(name, rdtype, raise_on_no_answer=False, search=False)
        except dns.resolver.NXDOMAIN:
            raise NameNotFound(
                f"{name} does not exist (NXDOMAIN from resolver {self._resolvers()})"
            ) from None
        except dns.resolver.LifetimeTimeout:
            raise ResolutionError(
                f"resolver {self._resolvers()} did not answer {rdtype} {name} "
                f"within {self.timeout_s:g} s"
            ) from None
        except dns.resolver.NoNameservers as e:
            errors = e.kwargs.get("errors") or []
            detail = "; ".join(
                f"{self._labels.get(err[0], err[0])} {_failure(err[3])}" for err in errors
            )
            raise ResolutionError(
                f"resolver could not answer {rdtype} {name}: {detail or 'no server answered'}"
            ) from None
        except dns.exception.DNSException as e:
            raise ResolutionError(f"resolver could not answer {rdtype} {name}: {e}") from None

    def host_addresses(self, host: str) -> list[str]:
        """A and AAAA of ``host`` through the recursive resolver (CNAMEs followed by it)."""
        found: list[str] = []
        for rdtype in ("A", "AAAA"):
            answer = self.recursive(host, rdtype)
            if answer.rrset is not None:
                found.extend(rd.to_text() for rd in answer.rrset)
        return found

    def delegated_nameservers(self, domain: str) -> list[NameServer]:
        """The name servers the zone of ``domain`` is delegated to, each with its addresses,
        sorted by name; a server whose host name resolves to nothing has an empty list.

        The zone cut is the closest of the domain and its parents (down to the registrable
        domain) that has NS records.
        """
        missing: NameNotFound | None = None
        for zone in zone_candidates(domain):
            try:
                answer = self.recursive(zone, "NS")
            except NameNotFound as e:
                missing = e  # the zone cut may still be further up
                continue
            owner = dns.name.from_text(zone)
            if answer.rrset is not None and answer.rrset.name == owner:
                hosts = sorted({_text(rd.target) for rd in answer.rrset})
                return [(host, self.host_addresses(host)) for host in hosts]
        if missing is not None:
            raise missing
        raise ResolutionError(f"no name servers found for {normalize(domain)}")

    def query_authoritative(
        self, name: str, rdtype: str, ns_addresses: list[str], *, ns_name: str | None = None
    ) -> Answer:
        """Ask one delegated name server (at each of its addresses in turn until one answers)
        for ``rdtype`` at ``name``, without recursion, over UDP with TCP on truncation.

        NXDOMAIN raises ``NameNotFound``; a timeout, SERVFAIL, REFUSED or a non-authoritative
        answer at every address raises ``ResolutionError``. ``ns_name`` labels the messages.
        """
        label = ns_name or "name server"
        if not ns_addresses:
            raise ResolutionError(f"{label} has no A or AAAA record to reach it at")
        query = dns.message.make_query(name, rdtype)
        query.flags &= ~dns.flags.RD
        failures: list[str] = []
        for address in ns_addresses:
            server = f"{label} ({where(address, self.ns_port)})"
            try:
                response, _tcp = dns.query.udp_with_fallback(
                    query, address, timeout=self.timeout_s, port=self.ns_port
                )
            except dns.exception.Timeout:
                failures.append(f"{server} did not answer within {self.timeout_s:g} s")
                continue
            except (OSError, dns.exception.DNSException) as e:
                failures.append(f"{server} could not be asked: {_failure(e)}")
                continue
            rcode = response.rcode()
            if rcode == dns.rcode.NXDOMAIN:
                raise NameNotFound(
                    f"{rdtype} {name} at {server}: the name does not exist (NXDOMAIN)"
                )
            if rcode != dns.rcode.NOERROR:
                failures.append(f"{server} answered {dns.rcode.to_text(rcode)}")
                continue
            if not response.flags & dns.flags.AA:
                failures.append(f"{server} is not authoritative for {name} (lame delegation)")
                continue
            return Answer(server, address, tuple(response.answer))
        raise ResolutionError(f"{rdtype} {name}: " + "; ".join(failures))

    def ask_any(self, name: str, rdtype: str, servers: list[NameServer]) -> Answer:
        """``query_authoritative`` at each name server in turn until one answers."""
        failures: list[str] = []
        for ns_name, ns_addresses in servers:
            try:
                return self.query_authoritative(name, rdtype, ns_addresses, ns_name=ns_name)
            except NameNotFound:
                raise
            except ResolutionError as e:
                failures.append(str(e))
        raise ResolutionError("; ".join(failures) or f"no name servers to ask for {name}")

    def addresses(self, domain: str) -> list[str]:
        """A and AAAA of ``domain`` as its delegated name servers publish them (A first).

        A CNAME is followed inside the answer when the server included the target's records,
        otherwise through the recursive resolver. Raises ``ResolutionError`` when the domain
        has no address.
        """
        name = normalize(domain)
        servers = self.delegated_nameservers(name)
        found: list[str] = []
        for rdtype in ("A", "AAAA"):
            answer = self.ask_any(name, rdtype, servers)
            owner, hops = name, 0
            while (target := answer.cname(owner)) is not None and hops < MAX_CNAME_HOPS:
                owner, hops = target, hops + 1
            if hops >= MAX_CNAME_HOPS:
                raise ResolutionError(f"{name} has a CNAME chain longer than {MAX_CNAME_HOPS}")
            records = answer.records(owner, rdtype)
            if records:
                found.extend(rd.to_text() for rd in records)
            elif owner != name:  # the target lives elsewhere: the resolver follows it
                resolved = self.recursive(owner, rdtype)
                if resolved.rrset is not None:
                    found.extend(rd.to_text() for rd in resolved.rrset)
        if not found:
            raise ResolutionError(f"{name} has no A or AAAA record")
        return found
