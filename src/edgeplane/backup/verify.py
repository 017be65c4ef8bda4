"""Verification (spec 004's daily backup verification): every copy of a backup is downloaded
and its checksum checked, then the backup is restored into a scratch instance and checked:
the database's integrity, its schema revision and the control plane's revision against the
manifest, every table's row count (SQLite), and that the stored secrets decrypt with the
secret key the backup carries. Configuration backups are parsed and validated as files
``edgeplane apply`` would take.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from edgeplane.backup import checks, fetch, keys
from edgeplane.backup.catalog import Found
from edgeplane.backup.errors import BackupError
from edgeplane.backup.manifest import Manifest
from edgeplane.backup.seal import workdir
from edgeplane.backup.targets import Target
from edgeplane.settings import Settings


@dataclass
class Report:
    backup: str
    ok: bool = True
    checks: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    def check(self, name: str, ok: bool, detail: str = "") -> None:
        self.checks.append({"check": name, "ok": ok, "detail": detail})
        if not ok:
            self.ok = False

    @property
    def message(self) -> str:
        failed = [f"{c['check']}: {c['detail']}" for c in self.checks if not c["ok"]]
        return "; ".join(failed) if failed else "restored and checked"

    def as_dict(self) -> dict[str, Any]:
        return {
            "backup": self.backup,
            "ok": self.ok,
            "message": self.message,
            "checks": self.checks,
            "seconds": round(self.seconds, 3),
        }


def _copies(report: Report, found: Found, targets: list[Target], work: Path) -> None:
    by_name = {t.name: t for t in targets}
    for name in found.locations:
        target = by_name.get(name)
        if target is None:
            report.check(f"copy at {name}", False, "the target is not configured here")
            continue
        try:
            fetch.download(target, found.manifest, work).unlink()
            report.check(f"copy at {name}", True, "checksum matches the manifest")
        except BackupError as exc:
            report.check(f"copy at {name}", False, str(exc))


def _database(report: Report, manifest: Manifest, facts: dict[str, Any], exact: bool) -> None:
    report.check(
        "schema revision",
        facts["schema"] == manifest.schema,
        f"{facts['schema']} (manifest: {manifest.schema})",
    )
    got = facts["revision"] or 0
    ok = got == manifest.revision if exact else got >= manifest.revision
    report.check("revision", ok, f"{got} (manifest: {manifest.revision})")
    if exact and manifest.rows:
        differ = {
            t: (facts["rows"].get(t), n)
            for t, n in manifest.rows.items()
            if facts["rows"].get(t) != n
        }
        report.check(
            "row counts",
            not differ,
            f"{sum(manifest.rows.values())} rows in {len(manifest.rows)} tables"
            if not differ
            else ", ".join(f"{t}: {a} (manifest: {b})" for t, (a, b) in sorted(differ.items())),
        )
    s = facts["secrets"]
    report.check(
        "secrets decrypt",
        s["key"] and s["failed"] == 0,
        f"{s['tried'] - s['failed']} of {s['tried']} sampled values decrypt"
        if s["key"]
        else "the backup carries no secret key",
    )


def _sqlite(
    report: Report, chain: list[Found], targets: list[Target], key: keys.BackupKey, work: Path
) -> None:
    from edgeplane.backup import sqlite

    db, last = fetch.rebuild_sqlite(chain, targets, key, work)
    manifest = chain[-1].manifest
    facts = sqlite.facts(db)
    report.check("integrity", facts["integrity"] == "ok", str(facts["integrity"]))
    secret = last / "home" / "secret.key"
    facts.update(
        {
            "secrets": checks.database_facts(
                f"sqlite:///{db}", secret.read_text() if secret.is_file() else None
            )["secrets"]
        }
    )
    _database(report, manifest, facts, exact=True)


def _config(
    report: Report, found: Found, targets: list[Target], key: keys.BackupKey, work: Path
) -> None:
    from edgeplane.iac import document

    unpacked = fetch.open_backup(found, targets, key, work)
    files = sorted((unpacked / "config").glob("*.yaml"))
    report.check(
        "projects",
        len(files) == found.manifest.rows.get("projects", len(files)),
        f"{len(files)} project files",
    )
    for path in files:
        try:
            doc = yaml.safe_load(path.read_text()) or {}
            document.validated(doc)
        except Exception as exc:  # a file edgeplane apply would refuse
            report.check(f"config {path.stem}", False, str(exc)[:300])


def verify(
    settings: Settings, backup_id: str, found: dict[str, Found], targets: list[Target]
) -> Report:
    """Verify one backup (and the chain it needs); never raises for what it finds."""
    started = time.monotonic()
    report = Report(backup_id)
    try:
        entry = found.get(backup_id)
        if entry is None:
            raise BackupError(f"no reachable target holds backup {backup_id}")
        key = keys.load(settings)
        if entry.manifest.key_id != key.key_id:
            raise BackupError(
                f"backup {backup_id} was made with another backup key (key id "
                f"{entry.manifest.key_id}; this control plane's is {key.key_id})"
            )
        with workdir(settings) as work:
            _copies(report, entry, targets, work)
            chain = fetch.chain_of(entry.manifest, found)
            if entry.manifest.engine == "config":
                _config(report, entry, targets, key, work)
            elif entry.manifest.engine == "postgresql":
                from edgeplane.backup import pg_backup

                facts = pg_backup.scratch_facts(settings, chain, targets, key, work)
                _database(report, entry.manifest, facts, exact=False)
            else:
                _sqlite(report, chain, targets, key, work)
    except BackupError as exc:
        report.check("restore", False, str(exc))
    report.seconds = time.monotonic() - started
    return report
