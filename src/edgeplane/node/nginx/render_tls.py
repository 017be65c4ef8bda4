"""Certificates: content-addressed files and the SNI map that picks one per handshake; the TLS
session ticket keys (files named by their id, the first one encrypts)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from edgeplane.node.nginx.cert_index import CertIndex
from edgeplane.node.nginx.render_shards import SHARD_MIN, Shards
from edgeplane.protocol.config import CertSpec, EdgeConfig, TicketKeySpec

DEFAULT_CERT = "_default"  # self-signed, generated once per prefix, for unknown SNI
TICKET_KEY_BYTES = (48, 80)  # the sizes nginx accepts (AES-128 / AES-256 tickets)
_KEY_ID = re.compile(r"^[0-9a-f]{8,64}$")


def name_matches(pattern: str, host: str) -> bool:
    """A certificate name (exact or ``*.wildcard``, one label) covers ``host``."""
    pattern, host = pattern.lower(), host.lower()
    if pattern.startswith("*."):
        head, _, rest = host.partition(".")
        return bool(head) and rest == pattern[2:]
    return pattern == host


def served_name(name: str) -> str:
    """A name as the maps spell it: lower case, no trailing dot. A name already so spelled
    is returned as it is, not copied (the maps of 10,000 names keep one string each)."""
    if name.islower() and not name.endswith("."):
        return name
    return name.lower().rstrip(".")


def _preferred(certs: list[CertSpec]) -> CertSpec:
    if len(certs) == 1:
        return certs[0]
    return max(certs, key=lambda c: (c.not_after, c.id))


def _best(index: CertIndex, pattern: str) -> str:
    """The certificate served for an SNI ``pattern``: one naming it exactly, else one whose
    wildcard covers it (the latest of several), else the default."""
    exact = index.named(pattern)
    if exact:
        return _preferred(exact).id
    if not pattern.startswith("*."):
        covering = index.covering(pattern)
        if covering:
            return _preferred(covering).id
    return DEFAULT_CERT


_NAME_KEYS: dict[str, str] = {}  # memo of name_key: 20,000 hashes per apply at 10,000 domains
_CERT_FILES: dict[str, str] = {}  # memo of cert_file: one string per certificate, not per use
_MEMO_MAX = 1 << 18  # entries of each memo; a full one starts afresh


def _remembered(memo: dict[str, str], key: str, make: Callable[[str], str]) -> str:
    """``make(key)``, made once and then the same string from ``memo``."""
    value = memo.get(key)
    if value is None:
        if len(memo) >= _MEMO_MAX:
            memo.clear()
        value = memo[key] = make(key)
    return value


def _hashed_name(pattern: str) -> str:
    return "n_" + hashlib.sha256(pattern.encode()).hexdigest()[:20]


def name_key(pattern: str) -> str:
    """The file name (without ``.pem``) of an SNI name's link: stable for the name."""
    return _remembered(_NAME_KEYS, pattern, _hashed_name)


def link_file(pattern: str) -> str:
    """The file under ``certs/names/`` of an SNI name's link."""
    return f"{name_key(pattern)}.pem"


def cert_file(cert_id: str) -> str:
    """The file under ``certs/`` of a certificate (key and chain): ``<id>.pem``. The same
    string for every link and set that names it: at 10,000 certificates each copy was a
    megabyte of the agent's memory."""
    return _remembered(_CERT_FILES, cert_id, "{}.pem".format)


def cert_links(
    config: EdgeConfig, names: list[str], index: CertIndex | None = None
) -> dict[str, str]:
    """SNI name (as in certificates and sites' domains) -> certificate id (``DEFAULT_CERT``
    for a name without one yet). ``names`` are the sites' domains; ``index``, the index of
    ``config.certs`` when the caller has it."""
    index = index or CertIndex.of(config.certs)
    return SniLinks.of(None, index, map(served_name, names)).links


@dataclass(frozen=True)
class SniLinks:
    """The SNI links of a render (``cert_links``) and what they were computed from, for the
    next render to start from: only the names added, and the names of certificates added or
    removed (with a wildcard's, the names one label below it), are looked up again."""

    index: CertIndex
    named: dict[str, int]  # pattern -> how many of the certificates name it
    patterns: frozenset[str]  # the certificates' and the hosts'
    links: dict[str, str]  # pattern -> certificate id
    targets: dict[str, str]  # ``link_targets(links)``

    @classmethod
    def of(cls, last: SniLinks | None, index: CertIndex, hosts: Iterable[str]) -> SniLinks:
        """The links of ``index``'s certificates and ``hosts`` (lower case, no trailing dot,
        as sites' domains are served), from ``last``."""
        if last is None:
            named: dict[str, int] = {}
            _count(named, index.by_id.values(), 1)
            patterns = frozenset(named).union(hosts)
            links = {p: _link(index, p) for p in sorted(patterns)}
            return cls(index, named, patterns, links, link_targets(links))
        gone = [last.index.by_id[i] for i in last.index.by_id.keys() - index.by_id.keys()]
        new = [index.by_id[i] for i in index.by_id.keys() - last.index.by_id.keys()]
        named = last.named
        if gone or new:
            named = dict(named)
            _count(named, gone, -1)
            _count(named, new, 1)
        patterns = frozenset(named).union(hosts)
        if not (gone or new) and patterns == last.patterns:
            return cls(index, named, patterns, last.links, last.targets)
        again = set(patterns - last.patterns)
        wild = set()
        for cert in (*gone, *new):
            for name in cert.names:
                name = name.lower()
                again.add(name.rstrip("."))
                if name.startswith("*."):
                    wild.add(name[2:])
        if wild:  # rare: every name one label below a wildcard added or removed
            again |= {p for p in patterns if p.partition(".")[2] in wild}
        links, targets = dict(last.links), dict(last.targets)
        for p in last.patterns - patterns:
            del links[p]
            del targets[link_file(p)]
        for p in again & patterns:
            links[p] = _link(index, p)
            targets[link_file(p)] = cert_file(links[p])
        return cls(index, named, patterns, links, targets)


def _count(named: dict[str, int], certs: Iterable[CertSpec], step: int) -> None:
    for cert in certs:
        for pattern in {served_name(n) for n in cert.names}:
            left = named.get(pattern, 0) + step
            if left:
                named[pattern] = left
            else:
                del named[pattern]


def _link(index: CertIndex, pattern: str) -> str:
    named = index.exact.get(pattern)  # the common case (a name's own certificate): one lookup
    if named:
        return named[0].id if len(named) == 1 else _preferred(named).id
    return _best(index, pattern)


def cert_map(links: dict[str, str], shards: Shards) -> str:
    """``$ssl_server_name`` -> the name's link (``certs/names/<key>.pem``).

    The map names links, not certificates: the engine points a name's link at its certificate
    (one file: key and chain) and replaces it atomically before the reload. Workers of the
    previous configuration, which still accept for a moment after a reload, read the same link:
    no client sees an older certificate (or the default one) after a newer one, and a name gets
    its first certificate without a reload of the map. A site's name without a certificate yet
    has a link to the default certificate.
    """
    # a small map is written inline, in this order: sorted (``SniLinks`` adds new names last)
    names = sorted(links) if len(links) < SHARD_MIN else links
    entries = {pattern: name_key(pattern) for pattern in names}
    return shards.sharded_map(
        "$ssl_server_name", "$cert_name", entries, default=DEFAULT_CERT, hostnames=True
    )


def link_targets(links: dict[str, str]) -> dict[str, str]:
    """``certs/names/`` file -> the file under ``certs/`` it links to."""
    targets = {link_file(p): cert_file(cert_id) for p, cert_id in links.items()}
    targets[f"{DEFAULT_CERT}.pem"] = f"{DEFAULT_CERT}.pem"
    return targets


def cert_files(certs: Iterable[CertSpec]) -> dict[str, bytes]:
    """``<id>.pem`` (key, then chain) for every certificate (written under ``prefix/certs/``):
    one file, so that a link names key and certificate at once."""
    files: dict[str, bytes] = {}
    for cert in sorted(certs, key=lambda c: c.id):
        if not cert.id.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"certificate id {cert.id!r} is not a plain name")
        if not cert.cert_pem or not cert.key_pem:
            raise ValueError(f"certificate {cert.id}: no PEM (held by reference, not loaded)")
        key = cert.key_pem if cert.key_pem.endswith("\n") else cert.key_pem + "\n"
        files[f"{cert.id}.pem"] = (key + cert.cert_pem).encode()
    return files


def ticket_key_bytes(spec: TicketKeySpec) -> bytes:
    if not _KEY_ID.match(spec.id):
        raise ValueError(f"ticket key id {spec.id!r} is not a hex name")
    try:
        raw = base64.b64decode(spec.key, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"ticket key {spec.id}: not base64") from None
    if len(raw) not in TICKET_KEY_BYTES:
        raise ValueError(f"ticket key {spec.id}: {len(raw)} bytes, nginx takes 48 or 80")
    return raw


def ticket_files(config: EdgeConfig) -> dict[str, bytes]:
    """``<id>.key`` for every session ticket key (written under ``prefix/tickets/``)."""
    return {f"{k.id}.key": ticket_key_bytes(k) for k in config.ticket_keys}


def ssl_session_lines(config: EdgeConfig, tickets_dir: str) -> str:
    """Session resumption: the shared cache of this node, and tickets when the control plane
    sent keys (the same on every node: a client resumes on any of them)."""
    text = "ssl_session_cache shared:edge_tls:10m;\nssl_session_timeout 1h;\n"
    if not config.ticket_keys:
        return text + "ssl_session_tickets off;\n"
    text += "ssl_session_tickets on;\n"
    for key in config.ticket_keys:  # the first encrypts, every one decrypts
        ticket_key_bytes(key)
        text += f"ssl_session_ticket_key {tickets_dir}/{key.id}.key;\n"
    return text
