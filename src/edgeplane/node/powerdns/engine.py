"""Make the node's PowerDNS serve exactly a snapshot's zones: read, plan, apply, roll back, check.

One PATCH per zone (PowerDNS applies it in one transaction), so a zone is served either as it
was or as wanted. When PowerDNS refuses any zone's change, the zones already changed by the
same apply are put back as they were read, and the apply fails with PowerDNS's message naming
the zone. Additions come first and removals (keys, zones) last, so that a refusal of new
content never follows a removal that would need undoing. A successful apply is checked over
DNS: every changed zone must serve the desired SOA serial.

Zones come by reference (``apply_refs``: zone name -> hash of its ``ZoneSpec``, and a loader):
a zone whose hash is the one this engine last applied is neither loaded, nor read, nor
planned, so a change to one zone of 10,000 loads, reads and patches one zone. While the
PowerDNS process this engine last applied to runs, its zone list is not read again either;
after a restart (or a refused apply) every zone is listed and checked by its serial.

Unsigned zones ``sql_safe`` vouches for are written by SQL (``edgeplane.node.powerdns.bulk``):
an empty database before the server starts (from BULK_MIN zones), and under the running server
every new, changed or removed one, without reading it through the API first. The server keeps
no zone cache, so a zone written is served at once; the rows a change replaces or removes are
read first and put back if a later step of the same apply is refused, and PowerDNS's caches of
the zones are flushed through its control socket (``PdnsProcess.flush``). Signed zones, and
zones ``sql_safe`` cannot vouch for, go through the API, which judges them.

What one zone costs at 10,000 (measured, ``bench/dns.py --stages zones``): PowerDNS 4.7's
geoip backend copies its whole domain (every proxied name of every zone) each time the API
looks a zone up, so each API call on a zone costs 50-300 ms beside 10,000 proxied zones
(5-20 ms without them); by SQL a new zone is served 3-4 ms after the write.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rdatatype
import dns.rdtypes.ANY.SOA

from edgeplane.node.powerdns.api import PdnsApi, PdnsApiError, RRSetKey, RRSetValue
from edgeplane.node.powerdns.bulk import (
    Memo,
    delete_zones,
    load_zones,
    replace_zones,
    restore_zones,
    save_zones,
    sql_safe,
    zone_count,
)
from edgeplane.node.powerdns.plan import KeyChanges, ZonePlan, plan, revert_changes, rrset_specs
from edgeplane.node.powerdns.plan import zone_name as normalise
from edgeplane.node.powerdns.process import PdnsError, PdnsProcess
from edgeplane.node.powerdns.zone_names import ByName, by_name
from edgeplane.protocol.config import RRSetSpec, ZoneSpec, canonical_body, object_hash

SERIAL_DEADLINE = 5.0  # seconds for a changed zone to serve its new serial
FLUSH_ALL_FROM = 20  # zones created by one apply from which the whole cache is flushed once
# zones from which an empty database is filled by SQL before the server starts
BULK_MIN = 50
CHECK_SAMPLE = 100  # zones checked over DNS after a change of many by SQL
log = logging.getLogger(__name__)
_T = TypeVar("_T")


@dataclass(frozen=True)
class DnsApplyResult:
    ok: bool
    duration_ms: float
    error: str | None  # PowerDNS's message, naming the zone, when ok is False
    serials: dict[str, int] = field(default_factory=dict)  # zone -> SOA serial served
    changed: tuple[str, ...] = ()  # zones created, patched, re-keyed or deleted


def soa_serial(address: str, port: int, zone: str, timeout: float = 1.0) -> int | None:
    """The SOA serial ``zone`` is served with over DNS, or None (no authoritative answer)."""
    query = dns.message.make_query(zone, dns.rdatatype.SOA)
    try:
        answer = dns.query.udp(query, address, port=port, timeout=timeout)
        if answer.flags & dns.flags.TC:
            answer = dns.query.tcp(query, address, port=port, timeout=timeout)
    except (dns.exception.DNSException, OSError):
        return None
    if not answer.flags & dns.flags.AA:
        return None
    for rrset in answer.answer:
        if rrset.rdtype == dns.rdatatype.SOA:
            for rdata in rrset:
                if isinstance(rdata, dns.rdtypes.ANY.SOA.SOA):
                    return int(rdata.serial)
    return None


class _Refused(Exception):
    def __init__(self, error: str, pending: frozenset[str] = frozenset()) -> None:
        super().__init__(error)
        self.error = error
        self.pending = pending  # zones applied whose serial was not seen served in time


class _Unverified(_Refused):
    """Applied, but these zones did not serve their serial in time: only they are uncertain."""

    def __init__(self, error: str, applied: dict[str, tuple[str, int, bool]]) -> None:
        super().__init__(error)
        self.applied = applied


def _twice(zones: Mapping[str, str]) -> str:
    """The first zone two of ``zones``' names spell (as PowerDNS spells it)."""
    seen: set[str] = set()
    for name in zones:
        key = normalise(name)
        if key in seen:
            return key
        seen.add(key)
    raise AssertionError("no zone is named twice")


class DnsEngine:
    """The DNS side of an edge node; every method is safe to call from any thread."""

    def __init__(self, process: PdnsProcess) -> None:
        self.process = process
        self._lock = threading.RLock()
        self._api: PdnsApi | None = None
        self._api_for: tuple[str, str] | None = None
        # zone -> (hash, serial, signed) this engine made it serve, and the pid of the process
        self._applied: dict[str, tuple[str, int, bool]] = {}
        self._applied_pid: int | None = None
        # The zones of the last apply that completed, by name (their hashes are those of
        # ``_applied``): the next apply looks only at the names that differ.
        self._wanted_from: ByName | None = None
        self._zones = 0
        self._memo: Memo = {}
        self.bulk_loaded = 0  # zones the last start wrote by SQL (figures, tests)

    # ------------------------------------------------------------------ process

    @property
    def api(self) -> PdnsApi:
        """A client for the current process (its port may change when it is restarted)."""
        target = (self.process.api_url, self.process.api_key)
        if self._api is None or self._api_for != target:
            if self._api is not None:
                self._api.close()
            self._api, self._api_for = PdnsApi(*target), target
        return self._api

    def ensure_running(self) -> bool:
        """Restart PowerDNS if it died (its zones are on disk); True when it did."""
        with self._lock:
            return self.process.ensure_running()

    def stop(self) -> None:
        # Not behind the lock: an apply of thousands of zones in progress would hold the agent's
        # stop for its whole length; with the server gone it fails at its next call, and a
        # start in progress gives up instead of waiting for the servers it spawned to answer.
        self.process.interrupt()
        with self._lock:
            self.process.stop()
            self.process.interrupted.clear()  # stopped: a later start may start them again
            if self._api is not None:
                self._api.close()
            self._api = self._api_for = None

    def stats(self) -> dict[str, int]:
        return {"dns_zones": self._zones, "dns_up": int(self.process.running())}

    def served_serials(self, zones: Iterable[str] | None = None) -> dict[str, int | None]:
        """The SOA serial each zone (by default every zone PowerDNS has) is served with."""
        names = (
            [z.name for z in self.api.list_zones()]
            if zones is None
            else [normalise(z) for z in zones]
        )
        return {n: soa_serial(self.process.dns_address, self.process.dns_port, n) for n in names}

    # ------------------------------------------------------------------ apply

    def apply(self, zones: tuple[ZoneSpec, ...]) -> DnsApplyResult:
        """Serve exactly ``zones``; on any refusal every zone is left as it was."""
        specs: dict[str, ZoneSpec] = {}
        refs: dict[str, str] = {}
        for zone in zones:
            digest = object_hash(canonical_body(zone.model_dump(mode="json")))
            if zone.name in refs and refs[zone.name] != digest:
                return DnsApplyResult(False, 0.0, f"zone {normalise(zone.name)} appears twice")
            specs[digest], refs[zone.name] = zone, digest
        return self.apply_refs(refs, specs.__getitem__)

    def apply_refs(
        self, zones: Mapping[str, str], load: Callable[[str], ZoneSpec]
    ) -> DnsApplyResult:
        """Serve exactly ``zones`` (name -> hash of its ``ZoneSpec``; ``load`` gives the spec
        of a hash), loading only those that changed; on any refusal every zone is left as it
        was."""
        started = time.monotonic()
        with self._lock:
            try:
                if not self.process.running():
                    self._bulk_load(zones, load)
                self.process.ensure_running()
                self._memo = {}  # RRsets of the specs of this apply (see bulk.Memo)
                serials, changed = self._apply(zones, load)
            except _Unverified as exc:
                # Every other zone is as applied: only the unverified ones (kept with serial 0)
                # are read next time, after the zones are listed again.
                self._applied, self._applied_pid = exc.applied, None
                self._wanted_from = None
                return DnsApplyResult(False, _ms(started), str(exc))
            except (_Refused, PdnsError) as exc:
                self._forget()
                return DnsApplyResult(False, _ms(started), str(exc))
            except PdnsApiError as exc:  # reading failed: nothing was changed
                self._forget()
                return DnsApplyResult(False, _ms(started), str(exc))
            except (ValueError, LookupError) as exc:  # a zone twice, a zone not to be had
                self._forget()
                return DnsApplyResult(False, _ms(started), str(exc))
            finally:
                self._memo = {}
        return DnsApplyResult(True, _ms(started), None, serials, changed)

    def _bulk_load(self, zones: Mapping[str, str], load: Callable[[str], ZoneSpec]) -> None:
        """Before the server first answers, an empty database gets every unsigned zone that
        ``sql_safe`` vouches for in one SQLite transaction (``edgeplane.node.powerdns.bulk``);
        the API does the rest."""
        if len(zones) < BULK_MIN:
            return
        self.process.ensure_database()
        if zone_count(self.process.database) > 0:
            return
        started = time.monotonic()
        applied: dict[str, tuple[str, int, bool]] = {}

        def unsigned() -> Iterator[ZoneSpec]:
            for name, digest in zones.items():
                spec = load(digest)
                if sql_safe(spec):  # the others go through the API
                    applied[normalise(name)] = (digest, spec.serial, False)
                    yield spec

        written = load_zones(self.process.database, unsigned())
        self._applied, self._applied_pid = applied, None  # checked by serial once it runs
        self._wanted_from = None
        self.bulk_loaded = len(written)
        log.info(
            "DNS: %d zones written to an empty database in %.0f ms",
            len(written),
            (time.monotonic() - started) * 1000,
        )

    def _sql_changes(
        self, wanted: Mapping[str, str], known: set[str], load: Callable[[str], ZoneSpec]
    ) -> tuple[dict[str, ZoneSpec], list[str]]:
        """Of the zones this engine applied to the running server: the changed ones to write
        by SQL (unsigned before and after, ``sql_safe``) and the removed ones to delete by SQL
        (unsigned), none of them read through the API (each API call on a zone costs
        hundreds of ms beside a big geoip backend)."""
        applied = self._applied
        replaced: dict[str, ZoneSpec] = {}
        for name in sorted(wanted.keys() - known):
            if name not in applied or applied[name][2]:
                continue
            spec = load(wanted[name])
            if sql_safe(spec, self._memo):
                replaced[name] = spec
        deleted = sorted(n for n in applied.keys() - wanted.keys() if not applied[n][2])
        return replaced, deleted

    def _forget(self) -> None:
        """Trust nothing of the server's state: the next apply lists its zones and reads each
        whose serial is not the one this engine applied (a refused apply was rolled back, so
        most are; reading all of 10,000 zones through the API took tens of minutes)."""
        self._applied_pid = None

    def _apply(
        self, zones: Mapping[str, str], load: Callable[[str], ZoneSpec]
    ) -> tuple[dict[str, int], tuple[str, ...]]:
        api = self.api
        named, changed = by_name(zones, normalise, self._wanted_from)
        if len(named.zones) < len(zones):
            raise ValueError(f"zone {_twice(zones)} appears twice")
        wanted = named.zones
        differ = None if changed is None else {normalise(n) for n in changed}
        applied = self._applied
        trusted = bool(applied) and self._applied_pid == self.process.pid
        replaced: dict[str, ZoneSpec] = {}
        deleted: list[str] = []
        if trusted:
            # The same process serves what this engine applied: no need to list 10,000 zones,
            # nor to look at those whose hash is the one applied.
            if differ is not None:  # the last apply's names and hashes are ``applied``'s
                known = wanted.keys() - differ
            else:
                known = {n for n, h in wanted.items() if n in applied and applied[n][0] == h}
            replaced, deleted = self._sql_changes(wanted, known, load)
            to_read = sorted(applied.keys() - known - replaced.keys() - set(deleted))
            listed_serials = {n: applied[n][1] for n in to_read}
            listed_dnssec = {n for n in to_read if applied[n][2]}
        else:
            listed = {z.name: z for z in api.list_zones()}
            listed_serials = {n: z.serial for n, z in listed.items()}
            listed_dnssec = {n for n, z in listed.items() if z.dnssec}
            known = {
                n
                for n, h in wanted.items()
                if n in listed and n in applied and applied[n][:2] == (h, listed[n].serial)
            }
            to_read = [n for n in listed if n not in known]
        specs = {n: load(wanted[n]) for n in sorted(wanted.keys() - known - replaced.keys())}
        current = {n: api.get_rrsets(n) for n in to_read}
        keys: dict[str, dict[int, str]] = {}
        for name in to_read:
            spec = specs.get(name)
            if name in listed_dnssec or (spec is not None and spec.dnssec):
                keys[name] = {k.id: k.dnskey for k in api.list_cryptokeys(name)}
        todo = plan(current, tuple(specs.values()), keys)

        by_sql = self._execute(api, todo, current, keys, replaced, deleted)

        # Trusted, the known zones keep their serial and signing as applied (``_applied``).
        serials = {} if trusted else {n: listed_serials[n] for n in known}
        signed = set() if trusted else {n for n in known if n in listed_dnssec}
        signed.update(n for n, spec in specs.items() if spec.dnssec)
        pending = {n: specs[n].serial for n in todo.changed if n in specs}
        pending.update((n, spec.serial) for n, spec in replaced.items())
        try:
            serials.update(self._check_serials(pending, by_sql))
        except _Refused as exc:
            wanted_serials = {n: spec.serial for n, spec in (*specs.items(), *replaced.items())}

            def before(n: str) -> tuple[int, bool]:
                if trusted and n in known:
                    return applied[n][1], applied[n][2]
                return listed_serials.get(n, 0), n in signed

            unverified = {
                n: (h, 0 if n in exc.pending else wanted_serials.get(n, before(n)[0]), before(n)[1])
                for n, h in wanted.items()
            }
            raise _Unverified(exc.error, unverified) from None
        for name in todo.unchanged:
            serials[name] = specs[name].serial if name in specs else listed_serials[name]
        if trusted:
            now = dict(applied)
            for name in now.keys() - wanted.keys():
                del now[name]
            for name in wanted.keys() - known:
                now[name] = (wanted[name], serials.get(name, 0), name in signed)
            serials = {n: serial for n, (_, serial, _) in now.items()}
        else:
            now = {n: (h, serials.get(n, 0), n in signed) for n, h in wanted.items()}
        self._applied, self._applied_pid = now, self.process.pid
        self._wanted_from = named
        self._zones = len(wanted)
        return serials, tuple(sorted({*todo.changed, *replaced, *deleted}))

    def _execute(
        self,
        api: PdnsApi,
        todo: ZonePlan,
        current: Mapping[str, Mapping[RRSetKey, RRSetValue]],
        keys: Mapping[str, Mapping[int, str]],
        replaced: Mapping[str, ZoneSpec] = {},
        deleted: Sequence[str] = (),
    ) -> frozenset[str]:
        """Carry out ``todo``, and write ``replaced`` and delete ``deleted`` by SQL; the zones
        written by SQL (created or replaced). On a refusal every step is undone."""
        undo: list[Callable[[], object]] = []
        by_sql = self._sql_creates(todo) | frozenset(replaced)
        touched = {*todo.changed, *replaced, *deleted}  # every zone whose answers change
        database = self.process.database
        try:
            if replaced:
                saved = self._sql(save_zones, database, list(replaced))
                self._sql(replace_zones, database, list(replaced.values()), self._memo)
                undo.append(functools.partial(self._sql, restore_zones, database, saved))
            created = [z for z in todo.create if normalise(z.name) in by_sql]
            if created:
                self._sql(load_zones, database, created, self._memo)
                names = [normalise(z.name) for z in created]
                undo.append(functools.partial(self._sql, delete_zones, database, names))
            for zone in todo.create:
                name = normalise(zone.name)
                if name in by_sql:
                    continue
                api.create_zone(name, rrset_specs(zone))
                undo.append(functools.partial(api.delete_zone, name))
                self._import(api, name, todo.keys.get(name), undo)
            for name, changes in todo.patch.items():
                api.patch_rrsets(name, changes)
                back = revert_changes(changes, current[name])
                undo.append(functools.partial(api.patch_rrsets, name, back))
            created_names = {normalise(z.name) for z in todo.create}
            for name, kc in todo.keys.items():
                if name not in created_names:
                    self._import(api, name, kc, undo)
            # removals last
            for name, kc in todo.keys.items():
                for key_id in kc.delete_keys:
                    private = api.get_cryptokey(name, key_id).privatekey
                    api.delete_cryptokey(name, key_id)
                    if private:
                        undo.append(functools.partial(api.import_cryptokey, name, private))
            if deleted:
                saved_deleted = self._sql(save_zones, database, deleted)
                self._sql(delete_zones, database, deleted)
                undo.append(functools.partial(self._sql, restore_zones, database, saved_deleted))
            for name in todo.delete:
                privates = [api.get_cryptokey(name, k).privatekey for k in keys.get(name, {})]
                api.delete_zone(name)
                undo.append(functools.partial(self._recreate, api, name, current[name], privates))
            for name in todo.keys:
                if name not in todo.delete and self._signed(api, name):
                    api.rectify(name)  # the NSEC chain of the newly signed zone
            # A question asked before a zone existed was answered REFUSED, and that answer
            # sits in the packet cache (creating a zone does not clear it); SQL clears nothing.
            self._clear_caches(api, touched)
        except PdnsApiError as exc:
            failures = self._rollback(api, undo, todo)
            with contextlib.suppress(PdnsApiError, PdnsError):
                self._clear_caches(api, touched)
            error = str(exc)
            if failures:
                error += "; rollback failed: " + "; ".join(failures)
            raise _Refused(error) from exc
        return by_sql

    def _sql_creates(self, todo: ZonePlan) -> frozenset[str]:
        """The new zones to write by SQL: all those ``sql_safe`` vouches for (a zone written
        by SQL is served at once: the server keeps no zone cache; one API call beside a big
        geoip backend costs hundreds of ms)."""
        if not todo.create or not self.process.database.exists():
            return frozenset()
        return frozenset(normalise(z.name) for z in todo.create if sql_safe(z, self._memo))

    @staticmethod
    def _sql(write: Callable[..., _T], *args: object) -> _T:
        """One SQL step of an apply; its failure refuses the apply like the API's would."""
        try:
            return write(*args)
        except (sqlite3.Error, LookupError) as exc:
            raise PdnsApiError(f"zones not written by SQL: {exc}") from exc

    def _clear_caches(self, api: PdnsApi, zones: Iterable[str]) -> None:
        """Empty the caches of ``zones`` (their names and below; of everything from
        FLUSH_ALL_FROM zones, one call): PowerDNS's by its control socket
        (``PdnsProcess.flush``: the API's flush is ten times dearer beside a big geoip
        backend), through the API when that fails (PdnsApiError when both do); then
        dnsdist's in front, whether PowerDNS's was emptied or not."""
        names = sorted(set(zones))
        every = len(names) > FLUSH_ALL_FROM
        try:
            if names:
                try:
                    self.process.flush(None if every else names)
                except PdnsError:
                    for name in ["."] if every else names:
                        api.flush_cache(name)
        finally:
            self.process.purge(None if every else names)

    def _import(
        self, api: PdnsApi, zone: str, kc: KeyChanges | None, undo: list[Callable[[], object]]
    ) -> None:
        for key in kc.import_keys if kc else ():
            imported = api.import_cryptokey(zone, key.private_key)
            undo.append(functools.partial(api.delete_cryptokey, zone, imported.id))

    @staticmethod
    def _signed(api: PdnsApi, zone: str) -> bool:
        return bool(api.list_cryptokeys(zone))

    @staticmethod
    def _recreate(
        api: PdnsApi,
        zone: str,
        rrsets: Mapping[RRSetKey, RRSetValue],
        privates: list[str | None],
    ) -> None:
        api.create_zone(
            zone,
            [RRSetSpec(name=n, type=t, ttl=ttl, records=r) for (n, t), (ttl, r) in rrsets.items()],
        )
        for private in privates:
            if private:
                api.import_cryptokey(zone, private)
        if any(privates):
            api.rectify(zone)

    def _rollback(
        self, api: PdnsApi, undo: list[Callable[[], object]], todo: ZonePlan
    ) -> list[str]:
        failures: list[str] = []
        for step in reversed(undo):
            try:
                step()
            except PdnsApiError as exc:
                failures.append(str(exc))
        for name in todo.keys:
            with contextlib.suppress(PdnsApiError):
                if self._signed(api, name):
                    api.rectify(name)
        return failures

    def _check_serials(
        self, pending: dict[str, int], by_sql: frozenset[str] = frozenset()
    ) -> dict[str, int]:
        """Every created or changed zone (name -> its desired serial) serves that SOA serial
        over DNS; of the zones written by SQL (one transaction, their caches flushed), a sample
        of CHECK_SAMPLE stands for all (10,000 queries one after another take seconds)."""
        served: dict[str, int] = {}
        written = sorted(by_sql.intersection(pending))
        if written:
            sample = set(written[:: max(1, len(written) // CHECK_SAMPLE)])
            for name in written:
                if name not in sample:
                    served[name] = pending.pop(name)
        # A few seconds, and more for thousands of zones (one query each, one after another),
        # not counting the time queries wait for the geoip backend to read its zones file.
        deadline = time.monotonic() + SERIAL_DEADLINE + 0.002 * len(pending)
        waited = self.process.rediscover_seconds()
        while True:
            deadline += (now_waited := self.process.rediscover_seconds()) - waited
            waited = now_waited
            for name, serial in list(pending.items()):
                if time.monotonic() > deadline or not self.process.running():
                    break
                got = soa_serial(self.process.dns_address, self.process.dns_port, name)
                if got is not None:
                    served[name] = got
                if got == serial:
                    del pending[name]
            if not pending or time.monotonic() > deadline or not self.process.running():
                break
            time.sleep(0.01)
        if pending:
            wrong = ", ".join(
                f"{n} serves serial {served.get(n, 'nothing')}, expected {s}"
                for n, s in sorted(pending.items())[:20]
            )
            more = f" and {len(pending) - 20} more" if len(pending) > 20 else ""
            raise _Refused(f"applied, but {wrong}{more}", frozenset(pending))
        return served


def _ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)
