"""DNS records of a hosted zone: the input model and its canonical, validated form.

A record here is an RRset: one owner name and type with a TTL and its values. ``name`` is
relative to the zone (``@`` for the apex, ``www``, ``*.api``) or an absolute name inside it.
Values are given in the usual presentation form (``10 mail.example.com`` for MX, plain text
for TXT) and stored canonical: names absolute with the trailing dot, TXT quoted and split in
255-byte strings, IPv6 compressed. ``proxied`` A / AAAA records carry no values: the edge
answers them with the nodes of the client's nearest healthy region (GeoDNS).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Literal

import idna
from pydantic import Field

from edgeplane.errors import InvalidInput
from edgeplane.model.common import Bool, Input, Int, Output, TabText, Text

RecordType = Literal["A", "AAAA", "CNAME", "TXT", "MX", "NS", "SRV", "CAA", "ALIAS"]
RECORD_TYPES: tuple[str, ...] = ("A", "AAAA", "CNAME", "TXT", "MX", "NS", "SRV", "CAA", "ALIAS")
MIN_TTL, MAX_TTL, DEFAULT_TTL = 1, 604800, 30
MAX_VALUES = 100
MAX_TXT = 4000
CHALLENGE_LABEL = "_edgeplane-challenge"
CAA_TAGS = ("issue", "issuewild", "iodef")

_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")


class DNSRecord(Input):
    """One RRset of a zone, as users write it."""

    name: Text = Field("@", description="'@' for the apex, 'www', '*.api', or a name in the zone")
    type: RecordType
    ttl: Int = Field(DEFAULT_TTL, description=f"seconds, {MIN_TTL}-{MAX_TTL}")
    values: list[TabText] = Field(default_factory=list, max_length=MAX_VALUES)
    proxied: Bool = Field(
        False, description="A/AAAA answered by the edge nodes nearest the client (no values)"
    )


class RecordKey(Input):
    name: Text = "@"
    type: RecordType


class RecordsPut(Input):
    """``PUT /domains/{domain}/records``: the zone's records, replacing every record."""

    records: list[DNSRecord]


class RecordsPatch(Input):
    """``PATCH /domains/{domain}/records``: records to set (replacing the RRset of the same
    name and type) and RRsets to delete."""

    set: list[DNSRecord] = Field(default_factory=list)
    delete: list[RecordKey] = Field(default_factory=list)


class DNSRecordOut(Output):
    name: str  # relative: "@", "www"
    fqdn: str  # the absolute name, U-labels shown as A-labels
    type: str
    ttl: int
    values: list[str]
    proxied: bool
    managed: bool = False  # made by Edgeplane (SOA, NS, verification TXT): read-only


class ZoneRecords(Output):
    domain: str
    serial: int
    records: list[DNSRecordOut]


# Names --------------------------------------------------------------------------------------


def to_ascii_name(text: str) -> str:
    """A host name in A-labels, lower case, without the trailing dot (``*`` labels kept)."""
    raw = text.strip().rstrip(".").lower()
    if not raw:
        raise ValueError("must not be empty")
    labels = raw.split(".")
    out: list[str] = []
    for label in labels:
        if label.isascii():
            ascii_label = label
        else:
            try:
                ascii_label = idna.encode(label, uts46=True).decode("ascii")
            except idna.IDNAError as exc:
                raise ValueError(f"label {label!r} is not a valid name ({exc})") from None
        if not (ascii_label == "*" or _LABEL.match(ascii_label)):
            raise ValueError(
                f"label {label!r} must be 1-63 letters, digits, '-' or '_', not starting or "
                "ending with '-'"
            )
        out.append(ascii_label)
    name = ".".join(out)
    if len(name) > 253:
        raise ValueError("is longer than 253 characters")
    return name


def relative_owner(zone: str, name: str) -> str:
    """``name`` relative to ``zone`` ('@' for the apex); ValueError when outside it.

    A name that ends with the zone's name is taken as absolute; any other as relative.
    """
    text = name.strip()
    if text in ("@", ""):
        return "@"
    absolute = text.endswith(".")
    ascii_name = to_ascii_name(text)
    if ascii_name == zone:
        return "@"
    if ascii_name.endswith("." + zone):
        rel = ascii_name[: -len(zone) - 1]
    elif absolute:
        raise ValueError(f"{text!r} is outside the zone {zone}")
    else:
        rel = ascii_name
    if len(rel) + 1 + len(zone) > 253:
        raise ValueError("the full name is longer than 253 characters")
    labels = rel.split(".")
    if "*" in labels[1:]:
        raise ValueError("'*' may only be the leftmost label")
    return rel


def fqdn(zone: str, rel: str) -> str:
    """The absolute name with the trailing dot."""
    return f"{zone}." if rel == "@" else f"{rel}.{zone}."


def _target(value: str, what: str) -> str:
    text = value.strip()
    if text == ".":
        return "."
    try:
        name = to_ascii_name(text)
    except ValueError as exc:
        raise ValueError(f"{what} {text!r} {exc}") from None
    if "*" in name.split("."):
        raise ValueError(f"{what} {text!r} must not hold '*'")
    if "." not in name:
        raise ValueError(f"{what} {text!r} must be a fully qualified name (e.g. host.example.com)")
    return name + "."


def _uint(text: str, what: str, limit: int) -> int:
    if not text.isdigit() or int(text) > limit:
        raise ValueError(f"{what} {text!r} must be a whole number 0-{limit}")
    return int(text)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _txt(value: str) -> str:
    text = value
    if len(text) >= 2 and text.startswith('"') and text.endswith('"'):
        text = text[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    raw = text.encode("utf-8")
    if len(raw) > MAX_TXT:
        raise ValueError(f"is {len(raw)} bytes; a TXT value holds at most {MAX_TXT}")
    if any(b < 0x20 and b != 0x09 for b in raw):
        raise ValueError("must not hold control characters")
    chunks = [raw[i : i + 255] for i in range(0, len(raw), 255)] or [b""]
    return " ".join(_quote(c.decode("utf-8", "replace")) for c in chunks)


def txt_text(value: str) -> str:
    """The text of a canonical TXT value (its strings joined)."""
    parts = re.findall(r'"((?:[^"\\]|\\.)*)"', value)
    return "".join(p.replace('\\"', '"').replace("\\\\", "\\") for p in parts)


def canonical_value(rtype: str, value: str) -> str:
    """The value in PowerDNS presentation form; ValueError naming what is wrong."""
    text = value.strip()
    if rtype == "A":
        try:
            return str(ipaddress.IPv4Address(text))
        except ValueError:
            raise ValueError(f"{text!r} is not an IPv4 address") from None
    if rtype == "AAAA":
        try:
            return ipaddress.IPv6Address(text).compressed
        except ValueError:
            raise ValueError(f"{text!r} is not an IPv6 address") from None
    if rtype in ("CNAME", "NS", "ALIAS"):
        return _target(text, "target")
    if rtype == "TXT":
        return _txt(value)
    parts = text.split()
    if rtype == "MX":
        if len(parts) != 2:
            raise ValueError(f"{text!r} must be 'PRIORITY HOST', e.g. '10 mail.example.com'")
        return f"{_uint(parts[0], 'priority', 65535)} {_target(parts[1], 'mail host')}"
    if rtype == "SRV":
        if len(parts) != 4:
            raise ValueError(
                f"{text!r} must be 'PRIORITY WEIGHT PORT TARGET', e.g. '10 5 5060 sip.example.com'"
            )
        prio = _uint(parts[0], "priority", 65535)
        weight = _uint(parts[1], "weight", 65535)
        port = _uint(parts[2], "port", 65535)
        return f"{prio} {weight} {port} {_target(parts[3], 'target')}"
    if rtype == "CAA":
        m = re.match(r"^(\d{1,3})\s+([A-Za-z0-9]+)\s+(.+)$", text)
        if not m:
            raise ValueError(f"{text!r} must be 'FLAGS TAG VALUE', e.g. '0 issue \"ca.example\"'")
        flags = _uint(m.group(1), "flags", 255)
        tag = m.group(2).lower()
        if tag not in CAA_TAGS:
            raise ValueError(f"tag {tag!r} must be one of {', '.join(CAA_TAGS)}")
        body = m.group(3).strip()
        if len(body) >= 2 and body.startswith('"') and body.endswith('"'):
            body = body[1:-1]
        if '"' in body or len(body) > 255:
            raise ValueError("the CAA value must be at most 255 characters without quotes")
        return f"{flags} {tag} {_quote(body)}"
    raise ValueError(f"type {rtype!r} is not supported")


# RRsets -------------------------------------------------------------------------------------


class CanonicalRecord:
    """A validated RRset: owner relative to the zone, values canonical and sorted."""

    __slots__ = ("name", "proxied", "ttl", "type", "values")

    def __init__(self, name: str, type_: str, ttl: int, values: tuple[str, ...], proxied: bool):
        self.name, self.type, self.ttl, self.values, self.proxied = (
            name,
            type_,
            ttl,
            values,
            proxied,
        )

    @property
    def key(self) -> tuple[str, str]:
        return (self.name, self.type)


def canonical_record(zone: str, record: DNSRecord, where: str) -> CanonicalRecord:
    """Validate one RRset of ``zone``; ``where`` is the field path for errors."""
    try:
        rel = relative_owner(zone, record.name)
    except ValueError as exc:
        raise InvalidInput.at(f"{where}.name", str(exc)) from None
    rtype = record.type
    if not MIN_TTL <= record.ttl <= MAX_TTL:
        raise InvalidInput.at(
            f"{where}.ttl", f"{record.ttl} is out of range ({MIN_TTL}-{MAX_TTL} seconds)"
        )
    if rel.split(".")[0] == CHALLENGE_LABEL:
        raise InvalidInput.at(
            f"{where}.name", f"{CHALLENGE_LABEL} is kept by Edgeplane for ownership verification"
        )
    if rel == "@" and rtype == "CNAME":
        raise InvalidInput.at(
            f"{where}.type",
            "a CNAME is not allowed at the zone apex (it would hide the SOA and NS records); "
            "use an ALIAS record (answered as the target's addresses) or a proxied A record",
        )
    if rtype == "NS" and rel == "@":
        raise InvalidInput.at(
            f"{where}.type", "the apex NS records are Edgeplane's edge nodes and cannot be set"
        )
    if rtype == "ALIAS" and rel != "@":
        raise InvalidInput.at(f"{where}.type", "ALIAS is for the apex; use a CNAME elsewhere")
    if record.proxied:
        if rtype not in ("A", "AAAA"):
            raise InvalidInput.at(f"{where}.proxied", "only A and AAAA records can be proxied")
        if record.values:
            raise InvalidInput.at(
                f"{where}.values",
                "a proxied record has no values: the edge answers with its nodes",
            )
        return CanonicalRecord(rel, rtype, record.ttl, (), True)
    if not record.values:
        raise InvalidInput.at(f"{where}.values", "at least one value is required")
    values: list[str] = []
    for i, value in enumerate(record.values):
        try:
            values.append(canonical_value(rtype, value))
        except ValueError as exc:
            raise InvalidInput.at(f"{where}.values[{i}]", str(exc)) from None
    if rtype in ("CNAME", "ALIAS") and len(set(values)) > 1:
        raise InvalidInput.at(f"{where}.values", f"a {rtype} has exactly one target")
    return CanonicalRecord(rel, rtype, record.ttl, tuple(sorted(set(values))), False)


def check_rrsets(records: list[CanonicalRecord], where: str) -> None:
    """Rules across RRsets: one RRset per name and type, nothing beside a CNAME."""
    seen: dict[tuple[str, str], int] = {}
    types_at: dict[str, set[str]] = {}
    for i, r in enumerate(records):
        if r.key in seen:
            raise InvalidInput.at(
                f"{where}[{i}]",
                f"{r.type} {r.name} is given twice (entry {seen[r.key]}); put every value "
                "in one record",
            )
        seen[r.key] = i
        types_at.setdefault(r.name, set()).add(r.type)
    for i, r in enumerate(records):
        if r.type == "CNAME" and len(types_at[r.name]) > 1:
            others = ", ".join(sorted(types_at[r.name] - {"CNAME"}))
            raise InvalidInput.at(
                f"{where}[{i}]",
                f"a CNAME at {r.name} cannot stand beside other records ({others})",
            )
