"""A small synchronous client of the PowerDNS Authoritative HTTP API (``/api/v1``).

Only what the DNS engine needs: zones (list, read, create, patch RRsets, delete), their
cryptokeys, rectify and the packet cache flush. Every refusal raises :class:`PdnsApiError`
with PowerDNS's own message.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from edgeplane.protocol.config import RRSetSpec

RRSetKey = tuple[str, str]  # (name, type)
RRSetValue = tuple[int, tuple[str, ...]]  # (ttl, records)


class PdnsApiError(Exception):
    """PowerDNS refused a call (or could not be reached); ``message`` is its own words."""

    def __init__(self, message: str, *, status: int | None = None, zone: str | None = None):
        super().__init__(f"{zone}: {message}" if zone else message)
        self.message = message
        self.status = status
        self.zone = zone


@dataclass(frozen=True)
class ZoneInfo:
    """A zone as the zone list shows it."""

    name: str
    serial: int
    dnssec: bool


@dataclass(frozen=True)
class CryptoKey:
    id: int
    dnskey: str  # "257 3 13 <base64>"
    active: bool
    privatekey: str | None = None  # only when read one by one


@dataclass(frozen=True)
class RRSetChange:
    """One entry of a PATCH: REPLACE with ``ttl`` and ``records``, or DELETE."""

    name: str
    type: str
    changetype: Literal["REPLACE", "DELETE"]
    ttl: int = 0
    records: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": self.name,
            "type": self.type,
            "changetype": self.changetype,
        }
        if self.changetype == "REPLACE":
            body["ttl"] = self.ttl
            body["records"] = [{"content": c, "disabled": False} for c in self.records]
        return body


def rrsets_of(zone_json: Mapping[str, Any]) -> dict[RRSetKey, RRSetValue]:
    """A zone's RRsets, as ``GET /zones/{zone}`` returns them, keyed by (name, type)."""
    out: dict[RRSetKey, RRSetValue] = {}
    for rrset in zone_json.get("rrsets", ()):
        records = tuple(sorted(r["content"] for r in rrset["records"] if not r["disabled"]))
        if records:
            out[(rrset["name"], rrset["type"])] = (int(rrset["ttl"]), records)
    return out


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("error"):
        return str(body["error"])
    text = response.text.strip()
    return text or f"HTTP {response.status_code}"


class PdnsApi:
    """Synchronous client; ``base_url`` is ``http://127.0.0.1:PORT/api/v1``."""

    def __init__(self, base_url: str, api_key: str, *, timeout: float = 30.0) -> None:
        self._client = httpx.Client(
            base_url=f"{base_url.rstrip('/')}/servers/localhost",
            headers={"X-API-Key": api_key},
            timeout=timeout,
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> PdnsApi:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(
        self,
        method: str,
        path: str,
        *,
        zone: str | None = None,
        json: Any = None,
        params: Mapping[str, str] | None = None,
    ) -> Any:
        try:
            r = self._client.request(method, path, json=json, params=params)
        except httpx.HTTPError as exc:
            raise PdnsApiError(f"PowerDNS API unreachable: {exc}", zone=zone) from exc
        if r.status_code >= 400:
            raise PdnsApiError(_message(r), status=r.status_code, zone=zone)
        if r.status_code == 204 or not r.content:
            return None
        return r.json()

    # ------------------------------------------------------------------ zones

    def list_zones(self) -> list[ZoneInfo]:
        return [
            ZoneInfo(z["name"], int(z["serial"]), bool(z["dnssec"]))
            for z in self._call("GET", "/zones")
        ]

    def get_zone(self, zone: str) -> dict[str, Any]:
        """The zone's JSON, RRsets included."""
        body: dict[str, Any] = self._call("GET", f"/zones/{zone}", zone=zone)
        return body

    def get_rrsets(self, zone: str) -> dict[RRSetKey, RRSetValue]:
        return rrsets_of(self.get_zone(zone))

    def create_zone(self, zone: str, rrsets: Iterable[RRSetSpec]) -> None:
        """A Native zone holding exactly ``rrsets`` (SOA and NS included).

        ``soa_edit_api`` is empty so that PowerDNS never edits the serial: the one in our SOA
        record is the one served."""
        body = {
            "name": zone,
            "kind": "Native",
            "nameservers": [],
            "soa_edit_api": "",
            "api_rectify": True,
            "rrsets": [
                {
                    "name": r.name,
                    "type": r.type,
                    "ttl": r.ttl,
                    "records": [{"content": c, "disabled": False} for c in r.records],
                }
                for r in rrsets
            ],
        }
        self._call("POST", "/zones", zone=zone, json=body, params={"rrsets": "false"})

    def patch_rrsets(self, zone: str, changes: Sequence[RRSetChange]) -> None:
        """All ``changes`` in one transaction: either all are served or none."""
        if changes:
            body = {"rrsets": [c.to_json() for c in changes]}
            self._call("PATCH", f"/zones/{zone}", zone=zone, json=body)

    def delete_zone(self, zone: str) -> None:
        self._call("DELETE", f"/zones/{zone}", zone=zone)

    def rectify(self, zone: str) -> None:
        """Recompute the DNSSEC ordering data (NSEC chain) of a signed zone."""
        self._call("PUT", f"/zones/{zone}/rectify", zone=zone)

    def flush_cache(self, zone: str) -> None:
        """Drop the packet and query cache entries of ``zone`` and the names under it."""
        self._call("PUT", "/cache/flush", zone=zone, params={"domain": zone})

    # ------------------------------------------------------------------ cryptokeys

    def list_cryptokeys(self, zone: str) -> list[CryptoKey]:
        return [
            CryptoKey(int(k["id"]), str(k["dnskey"]), bool(k["active"]))
            for k in self._call("GET", f"/zones/{zone}/cryptokeys", zone=zone)
        ]

    def get_cryptokey(self, zone: str, key_id: int) -> CryptoKey:
        """One key, its private half included."""
        k = self._call("GET", f"/zones/{zone}/cryptokeys/{key_id}", zone=zone)
        return CryptoKey(int(k["id"]), str(k["dnskey"]), bool(k["active"]), k.get("privatekey"))

    def import_cryptokey(self, zone: str, private_key: str) -> CryptoKey:
        """Import an ISC private key as an active combined signing key (flags 257)."""
        body = {"privatekey": private_key, "keytype": "csk", "active": True, "published": True}
        k = self._call("POST", f"/zones/{zone}/cryptokeys", zone=zone, json=body)
        return CryptoKey(int(k["id"]), str(k["dnskey"]), bool(k["active"]))

    def delete_cryptokey(self, zone: str, key_id: int) -> None:
        self._call("DELETE", f"/zones/{zone}/cryptokeys/{key_id}", zone=zone)
