"""Zones written straight into PowerDNS's gsqlite3 database, in one SQLite transaction.

Creating a zone through the HTTP API is one call and one transaction per zone (tens of ms:
10,000 zones took minutes; and beside a geoip backend of 10,000 proxied names, 200-400 ms for
one zone, as PowerDNS 4.7's geoip backend copies its domain at every zone lookup). Written by
SQL, one zone takes milliseconds and thousands take seconds: before the server first answers
(an empty database: nothing can be cached yet), and under a running server, which runs
without a zone cache (``zone-cache-refresh-interval=0``: it asks the database which zone a
name is in, so a zone written is served at once), after which the caller flushes the packet
caches (a question asked before a zone existed keeps its negative answer there). Every write
can be undone: :func:`save_zones` reads the rows of the zones a change replaces or removes,
:func:`restore_zones` puts them back. Only zones :func:`sql_safe` vouches for are written so:
PowerDNS checks what its API is given and refuses it with a message, SQL takes anything; the
others go through the API.

The rows are those the API writes (checked against PowerDNS 4.7): names lower-case without the
trailing dot; MX and SRV priorities in the ``prio`` column; ``auth`` 0 at and below a
delegation (an NS RRset below the apex); an empty non-terminal row (type NULL) for every name
between a record and the apex that holds none; the ``SOA-EDIT-API`` (empty: PowerDNS never
edits our serial) and ``API-RECTIFY`` metadata. Signed zones are left to the API: their keys
are imported and their NSEC chain (``ordername``) computed by PowerDNS (``rectify``), which
has no SQL equivalent here.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path

from edgeplane.node.powerdns.api import RRSetKey, RRSetValue
from edgeplane.node.powerdns.plan import canonical_record, desired_rrsets, zone_name
from edgeplane.protocol.config import ZoneSpec

PRIO_TYPES = ("MX", "SRV")
TIMEOUT = 30.0  # seconds to wait for the server's own writes to the database
# A zone's RRsets by the id of its spec, for one apply: sql_safe and zone_rows each need them
# (canonical forms parsed by dnspython: about a millisecond a zone), computed once.
Memo = dict[int, dict[RRSetKey, RRSetValue]]


def _rrsets(zone: ZoneSpec, memo: Memo | None) -> dict[RRSetKey, RRSetValue]:
    if memo is None:
        return desired_rrsets(zone)
    found = memo.get(id(zone))
    if found is None:
        found = memo[id(zone)] = desired_rrsets(zone)
    return found


def _bare(name: str) -> str:
    return name.lower().rstrip(".")


def zone_count(database: Path) -> int:
    """How many zones the database holds (0 when it does not exist yet)."""
    if not database.exists():
        return 0
    with contextlib.closing(sqlite3.connect(database)) as db:
        try:
            return int(db.execute("SELECT COUNT(*) FROM domains").fetchone()[0])
        except sqlite3.OperationalError:
            return 0


def zone_rows(
    zone: ZoneSpec, memo: Memo | None = None
) -> Iterator[tuple[str, str | None, str | None, int | None, int, int]]:
    """(name, type, content, ttl, prio, auth) of every row of ``zone``, ENTs included."""
    apex = _bare(zone_name(zone.name))
    rrsets = _rrsets(zone, memo)
    cuts = {_bare(n) for (n, t) in rrsets if t == "NS" and _bare(n) != apex}

    def below_cut(name: str, inclusive: bool) -> bool:
        return any((name == c and inclusive) or name.endswith("." + c) for c in cuts)

    owners: set[str] = set()
    for (name, rtype), (ttl, records) in sorted(rrsets.items()):
        bare = _bare(name)
        owners.add(bare)
        auth = 0 if below_cut(bare, inclusive=True) else 1
        for content in records:
            prio = 0
            if rtype in PRIO_TYPES:
                head, _, rest = content.strip().partition(" ")
                prio, content = int(head), rest.strip()
            yield bare, rtype, content, ttl, prio, auth
    ents: set[str] = set()
    for owner in owners:
        if owner == apex or not owner.endswith("." + apex) or below_cut(owner, inclusive=False):
            continue
        labels = owner[: -len(apex) - 1].split(".")
        for i in range(1, len(labels)):
            parent = ".".join(labels[i:]) + "." + apex
            if parent not in owners and not below_cut(parent, inclusive=True):
                ents.add(parent)
    for ent in sorted(ents):
        yield ent, None, None, None, 0, 1


def sql_safe(zone: ZoneSpec, memo: Memo | None = None) -> bool:
    """Whether ``zone`` may be written by SQL: unsigned, and nothing PowerDNS's API would
    refuse (every record parses, every name is in the zone, one SOA at the apex, NS there, no
    CNAME beside other data). A zone that is not goes through the API, which judges it."""
    if zone.dnssec:
        return False
    apex = zone_name(zone.name)
    try:
        rrsets = _rrsets(zone, memo)
    except ValueError:
        return False
    types: dict[str, set[str]] = {}
    for (name, rtype), (_ttl, records) in rrsets.items():
        if not records or not (name == apex or name.endswith("." + apex)):
            return False
        if rtype not in ("LUA", "ALIAS") and any(
            " ? " in canonical_record(rtype, r) for r in records
        ):
            return False
        types.setdefault(name, set()).add(rtype)
    soa = rrsets.get((apex, "SOA"))
    if soa is None or len(soa[1]) != 1 or (apex, "NS") not in rrsets:
        return False
    return not any("CNAME" in t and (len(t) > 1 or name == apex) for name, t in types.items())


def load_zones(database: Path, zones: Iterable[ZoneSpec], memo: Memo | None = None) -> list[str]:
    """Insert ``zones`` (unsigned, absent from the database) in one transaction; the zones
    written. Under a running server the caller then flushes the caches; on any error nothing
    is written."""
    written: list[str] = []
    with contextlib.closing(sqlite3.connect(database, timeout=TIMEOUT)) as db:
        db.execute("PRAGMA foreign_keys = 1")
        with db:
            for zone in zones:
                apex = _bare(zone_name(zone.name))
                cursor = db.execute(
                    "INSERT INTO domains (name, master, type, account)"
                    " VALUES (?, '', 'NATIVE', '')",
                    (apex,),
                )
                domain_id = cursor.lastrowid
                db.executemany(
                    "INSERT INTO records (domain_id, name, type, content, ttl, prio, disabled,"
                    " ordername, auth) VALUES (?, ?, ?, ?, ?, ?, 0, NULL, ?)",
                    ((domain_id, *row) for row in zone_rows(zone, memo)),
                )
                db.executemany(
                    "INSERT INTO domainmetadata (domain_id, kind, content) VALUES (?, ?, ?)",
                    ((domain_id, "SOA-EDIT-API", ""), (domain_id, "API-RECTIFY", "1")),
                )
                written.append(zone_name(zone.name))
    return written


def replace_zones(database: Path, zones: Iterable[ZoneSpec], memo: Memo | None = None) -> list[str]:
    """Replace every row of these existing unsigned zones by the zone's, in one transaction,
    under a running server: the caller then flushes its packet cache."""
    written: list[str] = []
    with contextlib.closing(sqlite3.connect(database, timeout=TIMEOUT)) as db:
        db.execute("PRAGMA foreign_keys = 1")
        with db:
            for zone in zones:
                apex = _bare(zone_name(zone.name))
                found = db.execute("SELECT id FROM domains WHERE name = ?", (apex,)).fetchone()
                if found is None:
                    raise LookupError(f"zone {zone_name(zone.name)} is not in the database")
                domain_id = int(found[0])
                db.execute("DELETE FROM records WHERE domain_id = ?", (domain_id,))
                db.executemany(
                    "INSERT INTO records (domain_id, name, type, content, ttl, prio, disabled,"
                    " ordername, auth) VALUES (?, ?, ?, ?, ?, ?, 0, NULL, ?)",
                    ((domain_id, *row) for row in zone_rows(zone, memo)),
                )
                written.append(zone_name(zone.name))
    return written


def delete_zones(database: Path, names: Iterable[str]) -> None:
    """Remove these zones and everything of theirs, in one transaction (also the undo of
    :func:`load_zones`): the caller then flushes the caches."""
    apexes = [(_bare(n),) for n in names]
    with contextlib.closing(sqlite3.connect(database, timeout=TIMEOUT)) as db:
        db.execute("PRAGMA foreign_keys = 1")
        with db:
            db.execute("CREATE TEMP TABLE gone (name TEXT PRIMARY KEY)")
            db.executemany("INSERT OR IGNORE INTO gone (name) VALUES (?)", apexes)
            ids = "SELECT id FROM domains WHERE name IN (SELECT name FROM gone)"
            for table in ("records", "domainmetadata", "cryptokeys", "comments"):
                db.execute(f"DELETE FROM {table} WHERE domain_id IN ({ids})")
            db.execute(f"DELETE FROM domains WHERE id IN ({ids})")


# A zone's rows as :func:`save_zones` read them: its ``domains`` row, then its ``records`` and
# its ``domainmetadata`` rows, each without the zone's id (every column in table order).
SavedZone = tuple[tuple[object, ...], list[tuple[object, ...]], list[tuple[object, ...]]]
_DOMAIN_COLUMNS = "id, name, master, last_check, type, notified_serial, account, options, catalog"
_RECORD_COLUMNS = "name, type, content, ttl, prio, disabled, ordername, auth"


def save_zones(database: Path, names: Iterable[str]) -> dict[str, SavedZone]:
    """Every row of these zones (those the database holds), for :func:`restore_zones`."""
    saved: dict[str, SavedZone] = {}
    with contextlib.closing(sqlite3.connect(database, timeout=TIMEOUT)) as db:
        for name in names:
            apex = _bare(name)
            domain = db.execute(
                f"SELECT {_DOMAIN_COLUMNS} FROM domains WHERE name = ?", (apex,)
            ).fetchone()
            if domain is None:
                continue
            records = db.execute(
                f"SELECT {_RECORD_COLUMNS} FROM records WHERE domain_id = ? ORDER BY id",
                (domain[0],),
            ).fetchall()
            meta = db.execute(
                "SELECT kind, content FROM domainmetadata WHERE domain_id = ? ORDER BY id",
                (domain[0],),
            ).fetchall()
            saved[apex] = (tuple(domain), records, meta)
    return saved


def restore_zones(database: Path, saved: dict[str, SavedZone]) -> None:
    """Put these zones back exactly as :func:`save_zones` read them (same zone ids), whatever
    they hold now, in one transaction: the caller then flushes the caches."""
    with contextlib.closing(sqlite3.connect(database, timeout=TIMEOUT)) as db:
        db.execute("PRAGMA foreign_keys = 1")
        with db:
            for apex, (domain, records, meta) in saved.items():
                for table in ("records", "domainmetadata", "cryptokeys", "comments"):
                    db.execute(
                        f"DELETE FROM {table} WHERE domain_id IN"
                        " (SELECT id FROM domains WHERE name = ? OR id = ?)",
                        (apex, domain[0]),
                    )
                db.execute("DELETE FROM domains WHERE name = ? OR id = ?", (apex, domain[0]))
                db.execute(
                    f"INSERT INTO domains ({_DOMAIN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    domain,
                )
                db.executemany(
                    f"INSERT INTO records (domain_id, {_RECORD_COLUMNS})"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    ((domain[0], *row) for row in records),
                )
                db.executemany(
                    "INSERT INTO domainmetadata (domain_id, kind, content) VALUES (?, ?, ?)",
                    ((domain[0], *row) for row in meta),
                )
