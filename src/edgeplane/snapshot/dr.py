"""Which data center serves a load balancer's backends: DR configs in the snapshot (pure).

A backend is **governed** by a DR config when it is an inventory server of the config's
project (named by its id, or a ``host:port`` / URL whose host is the server's address) whose
data center is the config's primary or its backup, and the pool holds backends of both (a pool
without a backup-side backend has nothing to fail over to, and is left as configured). What
the config's state (``DRStateRow``, read by ``snapshot.load``) does to a governed backend:

- **active = primary** (``normal``, ``failover_pending``): the primary's backends as
  configured; the backup's marked ``backup`` when ``failover_mode`` is automatic (nginx sends
  them the requests at once when every primary fails, before the monitor even switches), out
  of rotation when it is confirmed (traffic moves only once an operator confirms);
- **active = backup** (``failed_over``, ``failback_pending``, ``drill``): the primary's
  backends out of rotation, the backup's as primaries (their ``backup`` flag off).

"Out of rotation" is the admin state ``draining``: nginx sends no new request to the backend
(it is rendered ``down``) and the requests in flight finish across the graceful reload, as a
drill wants; and unlike ``disabled``, the agents keep checking it, which is how the monitor
sees the primary come back (failback) and the backup's health before a confirmed failover.

Several configs may govern one backend (a data center that is the backup of one config and
the primary of another): each config's effect applies, the strongest winning (out of
rotation, then ``backup``, then promoted, then as configured).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

Effect = Literal["keep", "promote", "backup", "drain"]
_STRENGTH: dict[Effect, int] = {"keep": 0, "promote": 1, "backup": 2, "drain": 3}
BACKUP_ACTIVE = frozenset({"failed_over", "failback_pending", "drill"})


@dataclass(frozen=True)
class DRRule:
    """One DR config and its state, as the snapshot reads them."""

    project: str
    id: str
    primary_dc: str
    backup_dc: str
    failover_mode: str = "automatic"  # automatic / confirmed
    active: str = "primary"  # primary / backup
    status: str = "normal"

    @property
    def backup_active(self) -> bool:
        return self.active == "backup" or self.status in BACKUP_ACTIVE

    def effect(self, side: Literal["primary", "backup"]) -> Effect:
        """What this rule does to a governed backend of its ``side``."""
        if self.backup_active:
            return "drain" if side == "primary" else "promote"
        if side == "primary":
            return "keep"
        return "backup" if self.failover_mode == "automatic" else "drain"


def host_of(text: str) -> str:
    """A host name or IP address normalised for comparing (lower case, IPv6 compressed)."""
    host = text.strip().strip("[]").lower()
    try:
        return ipaddress.ip_address(host).compressed
    except ValueError:
        return host


def backend_host(address: str) -> str | None:
    """The host of a backend given as ``host:port``, ``[v6]:port`` or an http(s) URL; None
    for anything else (a server id)."""
    text = address.strip()
    if text.startswith(("http://", "https://")):
        host = urlsplit(text).hostname
        return host_of(host) if host else None
    if text.startswith("["):
        host, sep, _ = text[1:].partition("]")
        return host_of(host) if sep else None
    host, sep, port = text.rpartition(":")
    if sep and host and port.isdigit() and ":" not in host:
        return host_of(host)
    return None


def index_addresses(servers: Iterable[tuple[str, str, str | None]]) -> dict[tuple[str, str], str]:
    """(project, host) -> the server of that project with that address, from (project,
    server id, address) triples; an address that several servers of a project share names
    none of them (a backend there cannot tell which it is: name the server by id instead)."""
    seen: dict[tuple[str, str], str | None] = {}
    for project, server_id, address in servers:
        if not address:
            continue
        key = (project, host_of(address))
        seen[key] = server_id if key not in seen else None
    return {k: v for k, v in seen.items() if v is not None}


@dataclass(frozen=True)
class Placement:
    """Where the servers of the projects with DR configs are: their data centers, and which
    server an address names (per project). Empty when no project has a DR config."""

    # (project, server id) -> its data center
    data_centers: Mapping[tuple[str, str], str] = field(default_factory=dict)
    # (project, its address's host) -> server id (``index_addresses``)
    by_address: Mapping[tuple[str, str], str] = field(default_factory=dict)
    # project -> its DR configs with their state, sorted by id
    rules: Mapping[str, tuple[DRRule, ...]] = field(default_factory=dict)

    def server_of(self, project: str, address: str) -> str | None:
        """The inventory server a backend address names: a server id of the project, or a
        ``host:port`` (URL) whose host is one of its servers' address; None otherwise."""
        text = address.strip()
        if (project, text) in self.data_centers:
            return text
        host = backend_host(text)
        return self.by_address.get((project, host)) if host is not None else None

    def data_center_of(self, project: str, address: str) -> str | None:
        server = self.server_of(project, address)
        return self.data_centers.get((project, server)) if server is not None else None


def pool_effects(
    placement: Placement, project: str, addresses: list[str]
) -> list[tuple[Effect, tuple[str, ...]]]:
    """For each backend address of a pool: the effect the project's DR configs have on it and
    the configs that govern it (none: as configured)."""
    rules = placement.rules.get(project, ())
    if not rules:
        return [("keep", ()) for _ in addresses]
    dcs = [placement.data_center_of(project, a) for a in addresses]
    present = {dc for dc in dcs if dc is not None}
    applying = [r for r in rules if r.primary_dc in present and r.backup_dc in present]
    out: list[tuple[Effect, tuple[str, ...]]] = []
    for dc in dcs:
        effect: Effect = "keep"
        governing: list[str] = []
        for rule in applying:
            side: Literal["primary", "backup"] | None = (
                "primary" if dc == rule.primary_dc else "backup" if dc == rule.backup_dc else None
            )
            if side is None:
                continue
            governing.append(rule.id)
            candidate = rule.effect(side)
            if _STRENGTH[candidate] > _STRENGTH[effect]:
                effect = candidate
        out.append((effect, tuple(governing)))
    return out


def apply_effect(effect: Effect, backup: bool, state: str) -> tuple[bool, str]:
    """A backend's (backup flag, admin state) under ``effect``."""
    if effect == "drain":
        return backup, "disabled" if state == "disabled" else "draining"
    if effect == "backup":
        return True, state
    if effect == "promote":
        return False, state
    return backup, state


def governed(placement: Placement, project: str, addresses: list[str]) -> bool:
    """Whether any DR config of the project governs a backend of these addresses."""
    return any(ids for _, ids in pool_effects(placement, project, addresses))
