"""The keyring of secrets at rest: status, rotation steps and the re-encryption job.

Rotating the key that encrypts stored secrets, with no downtime, takes four steps (``edgeplane
secrets rotate-key`` runs the first three; ``edgeplane.secrets`` describes the keyring):

1. **add** a new key as a secondary: every process learns it (processes on the same keyring
   file read it again when it changes, or at once when a value does not decrypt; replicas
   configured by ``EDGEPLANE_SECRET_KEY`` get it from their operator and restart one by one).
   Nothing is encrypted with it yet, so a process that has not learnt it loses nothing.
2. **promote** it to primary: new values are encrypted with it; every process still decrypts
   values under the old key.
3. **re-encrypt** what is stored: a job of the runner (one replica at a time, fenced by its
   lease), in batches of ``BATCH`` rows per transaction, each batch saving its progress in the
   same transaction, so a job interrupted anywhere (a stop, a new leader) resumes where it was.
   A value changed meanwhile is left alone (compare-and-set on the old ciphertext): it was
   written under the new primary already. The job waits while the replica running it has
   another primary (step 2 not done there yet).
4. **retire** the old key once ``status`` shows no value under it. The keyring keeps deriving
   from the key it derived from (``derive=``), so TLS session ticket keys and IaC digests do not
   change under users' feet.

Every encrypted column (``*_encrypted`` in any table) is covered: private keys of certificates,
the internal CA's keys and ACME account keys (``secrets``), DNSSEC keys, the secrets of
notification channels, and whatever a later table adds under that name.
"""

from __future__ import annotations

import fcntl
import logging
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from cryptography.fernet import Fernet
from sqlalchemy import Column, Table, select, tuple_, update

from edgeplane.errors import Conflict, NotFound
from edgeplane.model.secrets import KeyAdded, KeyInfo, Reencryption, SecretKeyStatus
from edgeplane.secrets import Keyring, SecretBox, SecretError, key_id, write_keyring
from edgeplane.store import (  # noqa: F401 (their tables in Base.metadata)
    access_tables,
    backup_tables,
    dr_tables,
    function_tables,
    ha_tables,
    iac_tables,
    monitoring_tables,
)
from edgeplane.store.access_tables import ReencryptionRow
from edgeplane.store.actor import LOCAL, PLATFORM_PROJECT, Actor
from edgeplane.store.db import Database
from edgeplane.store.tables import Base, utcnow

log = logging.getLogger("edgeplane.secrets")

KIND = "secret_key"
BATCH = 200  # rows re-encrypted per transaction
SCAN = 1000  # rows read per query when counting
UNKNOWN = "?"
ACTIVE = ("queued", "running", "waiting")


@dataclass(frozen=True)
class Encrypted:
    table: Table
    column: Column[str]

    @property
    def name(self) -> str:
        return f"{self.table.name}.{self.column.name}"

    @property
    def pk(self) -> list[Column[object]]:
        return list(self.table.primary_key.columns)


def encrypted_columns() -> list[Encrypted]:
    """Every column that holds values encrypted by the secret box (named ``*_encrypted``)."""
    out = []
    for table in sorted(Base.metadata.tables.values(), key=lambda t: t.name):
        for column in table.columns:
            if column.name.endswith("_encrypted"):
                out.append(Encrypted(table, column))
    return out


def _box(db: Database) -> SecretBox:
    if db.secrets is None:
        raise RuntimeError("this Database was opened without a secret box (secrets=...)")
    return db.secrets


def _rows(db: Database, col: Encrypted) -> Iterator[tuple[tuple[object, ...], str]]:
    """(primary key, value) of every non-null value of ``col``, by primary key, in pages."""
    after: tuple[object, ...] | None = None
    pk = col.pk
    while True:
        q = select(*pk, col.column).where(col.column.is_not(None))
        if after is not None:
            q = q.where(tuple_(*pk) > tuple_(*after))
        q = q.order_by(*pk).limit(SCAN)
        with db.engine.connect() as conn:
            page = conn.execute(q).all()
        for row in page:
            yield tuple(row[:-1]), str(row[-1])
        if len(page) < SCAN:
            return
        after = tuple(page[-1][:-1])


def count(db: Database) -> dict[str, dict[str, int]]:
    """ "table.column" -> key id -> values (``?``: none of the keyring's keys)."""
    box = _box(db)
    box.reload(force=True)  # another process may have changed the file a moment ago
    out: dict[str, dict[str, int]] = {}
    for col in encrypted_columns():
        per: dict[str, int] = {}
        for _, value in _rows(db, col):
            kid = box.key_of(value) or UNKNOWN
            per[kid] = per.get(kid, 0) + 1
        out[col.name] = per
    return out


def _job_model(row: ReencryptionRow) -> Reencryption:
    return Reencryption(
        id=row.id,
        target_key=row.target_key,
        status=row.status,
        requested_by=row.requested_by,
        created_at=row.created_at,
        started_at=row.started_at,
        ended_at=row.ended_at,
        reencrypted=row.reencrypted,
        unchanged=row.unchanged,
        columns_done=list(row.done_columns or []),
        message=row.message,
    )


def latest_job(db: Database) -> Reencryption | None:
    with db.read(LOCAL, PLATFORM_PROJECT) as tx:
        row = tx.session.scalar(
            select(ReencryptionRow).order_by(ReencryptionRow.created_at.desc()).limit(1)
        )
        return _job_model(row) if row is not None else None


def status(db: Database, actor: Actor) -> SecretKeyStatus:
    """This replica's keyring and how many stored values each key encrypts."""
    actor.require_platform_admin()
    box = _box(db)
    columns = count(db)
    ring = box.keyring
    totals: dict[str, int] = {}
    for per in columns.values():
        for kid, n in per.items():
            totals[kid] = totals.get(kid, 0) + n
    keys = [
        KeyInfo(
            id=kid,
            primary=kid == ring.primary_id,
            derive=kid == ring.derive_id,
            values=totals.get(kid, 0),
        )
        for kid in ring.ids
    ]
    return SecretKeyStatus(
        source="file" if box.path is not None else "env",
        primary=ring.primary_id,
        keys=keys,
        values=sum(totals.values()),
        unreadable=totals.get(UNKNOWN, 0),
        columns=columns,
        reencryption=latest_job(db),
    )


# The keyring file -------------------------------------------------------------------------

_file_lock = threading.Lock()


@contextmanager
def _editing(box: SecretBox) -> Iterator[Keyring]:
    """The keyring file as it is now, under a lock (of this process's threads and of other
    processes on the file), to be written by the block."""
    if box.path is None:
        raise Conflict(
            "the keyring comes from EDGEPLANE_SECRET_KEY: change it there (one key per line, "
            "the primary first) and restart each replica; see docs/security-access.md"
        )
    lock_path = box.path.with_name(box.path.name + ".lock")
    with _file_lock, open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            box.reload(force=True)
            yield Keyring.parse(box.path.read_text())
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _record(db: Database, actor: Actor, action: str, kid: str, after: dict[str, object]) -> None:
    with db.transaction(actor, PLATFORM_PROJECT) as tx:
        tx.record(action, KIND, kid, None, after, global_object=True)


def add_key(db: Database, actor: Actor) -> KeyAdded:
    """Step 1: a new random key, second in the keyring (it decrypts, nothing is encrypted
    with it yet)."""
    actor.require_platform_admin()
    box = _box(db)
    with _editing(box) as ring:
        new = Fernet.generate_key()
        keys = (ring.keys[0], new, *ring.keys[1:])
        assert box.path is not None
        write_keyring(box.path, Keyring(keys, ring.derive_key))
        box.reload(force=True)
    kid = key_id(new)
    _record(db, actor, "add", kid, {"id": kid, "primary": False})
    log.info("secret key %s added to the keyring (secondary)", kid)
    return KeyAdded(id=kid, status=status(db, actor))


def promote_key(db: Database, actor: Actor, kid: str) -> SecretKeyStatus:
    """Step 2: ``kid`` encrypts from now on (it must be in the keyring already)."""
    actor.require_platform_admin()
    box = _box(db)
    with _editing(box) as ring:
        try:
            key = ring.find(kid)
        except KeyError:
            raise NotFound(f"no key {kid!r} in the keyring", field="key_id") from None
        if key != ring.keys[0]:
            keys = (key, *(k for k in ring.keys if k != key))
            assert box.path is not None
            write_keyring(box.path, Keyring(keys, ring.derive_key))
            box.reload(force=True)
    _record(db, actor, "promote", kid, {"id": kid, "primary": True})
    log.info("secret key %s is the primary key", kid)
    return status(db, actor)


def retire_key(db: Database, actor: Actor, kid: str) -> SecretKeyStatus:
    """Step 4: remove ``kid`` from the keyring, refused while any stored value uses it, while
    it is the primary key, or while a re-encryption runs."""
    actor.require_platform_admin()
    box = _box(db)
    job = latest_job(db)
    if job is not None and job.status in ACTIVE:
        raise Conflict(f"re-encryption {job.id} is {job.status}: retire the key after it ends")
    with _editing(box) as ring:
        try:
            key = ring.find(kid)
        except KeyError:
            raise NotFound(f"no key {kid!r} in the keyring", field="key_id") from None
        if key == ring.keys[0]:
            raise Conflict(
                f"key {kid} is the primary key: promote another one first", field="key_id"
            )
        used = sum(per.get(kid, 0) for per in count(db).values())
        if used:
            raise Conflict(
                f"{used} stored values are still encrypted with key {kid}: re-encrypt them "
                "first (edgeplane secrets reencrypt)",
                field="key_id",
            )
        assert box.path is not None
        write_keyring(box.path, Keyring(tuple(k for k in ring.keys if k != key), ring.derive_key))
        box.reload(force=True)
    _record(db, actor, "retire", kid, {"id": kid, "retired": True})
    log.info("secret key %s retired", kid)
    return status(db, actor)


# The re-encryption job ---------------------------------------------------------------------


def request_reencryption(db: Database, actor: Actor) -> Reencryption:
    """Step 3: queue a re-encryption of every stored value under this replica's primary key
    (the one queued or running already, if any)."""
    actor.require_platform_admin()
    target = _box(db).keyring.primary_id
    with db.transaction(actor, PLATFORM_PROJECT) as tx:
        existing = tx.session.scalar(
            select(ReencryptionRow)
            .where(ReencryptionRow.status.in_(ACTIVE))
            .order_by(ReencryptionRow.created_at)
            .limit(1)
        )
        if existing is not None:
            if existing.target_key != target:
                existing.target_key = target
                existing.status = "queued"
                existing.message = None
            return _job_model(existing)
        row = ReencryptionRow(
            id=f"reenc-{secrets.token_hex(6)}",
            target_key=target,
            status="queued",
            requested_by=actor.name,
            created_at=utcnow(),
            progress={},
            done_columns=[],
        )
        tx.session.add(row)
        tx.session.flush()
        out = _job_model(row)
        tx.record("reencrypt", KIND, target, None, out.model_dump(mode="json"), global_object=True)
        return out


class Reencryptor:
    """The runner's job: advances the oldest active re-encryption, batch by batch, until it is
    done or the runner stops (``stopping``)."""

    def __init__(self, db: Database, batch: int = BATCH) -> None:
        self.db = db
        self.batch = batch

    def __call__(self, stopping: threading.Event | None = None) -> int:
        """One run: the values re-encrypted."""
        box = _box(self.db)
        with self.db.read(LOCAL, PLATFORM_PROJECT) as tx:
            row = tx.session.execute(
                select(ReencryptionRow.id, ReencryptionRow.target_key)
                .where(ReencryptionRow.status.in_(ACTIVE))
                .order_by(ReencryptionRow.created_at)
                .limit(1)
            ).first()
        if row is None:
            return 0
        job_id, target = str(row[0]), str(row[1])
        primary = box.keyring.primary_id
        if primary != target:
            self._set(
                job_id,
                status="waiting",
                message=f"the replica running background work encrypts with key {primary}, "
                f"not {target}: make {target} the primary key on every replica",
            )
            return 0
        self._set(job_id, status="running", message=None, started=True)
        done = 0
        for col in encrypted_columns():
            while not (stopping is not None and stopping.is_set()):
                moved, finished = self._batch(job_id, col)
                done += moved
                if finished:
                    break
            if stopping is not None and stopping.is_set():
                return done
        self._set(job_id, status="done", ended=True)
        log.info("re-encryption %s done: every stored value is under key %s", job_id, target)
        return done

    def _set(
        self,
        job_id: str,
        *,
        status: str,
        message: str | None = None,
        started: bool = False,
        ended: bool = False,
    ) -> None:
        with self.db.transaction(LOCAL, PLATFORM_PROJECT) as tx:
            row = tx.session.get(ReencryptionRow, job_id)
            if row is None:
                return
            row.status = status
            row.message = message
            if started and row.started_at is None:
                row.started_at = utcnow()
            if ended:
                row.ended_at = utcnow()

    def _batch(self, job_id: str, col: Encrypted) -> tuple[int, bool]:
        """Re-encrypt the next batch of ``col``: (values moved, whether the column is done)."""
        box = _box(self.db)
        pk = col.pk
        with self.db.transaction(LOCAL, PLATFORM_PROJECT) as tx:
            job = tx.session.get(ReencryptionRow, job_id)
            if job is None or job.status != "running":
                return 0, True
            if col.name in (job.done_columns or []):
                return 0, True
            after = (job.progress or {}).get(col.name)
            q = select(*pk, col.column).where(col.column.is_not(None))
            if after is not None:
                q = q.where(tuple_(*pk) > tuple_(*after))
            page = tx.session.execute(q.order_by(*pk).limit(self.batch)).all()
            moved = unchanged = 0
            for r in page:
                key, old = tuple(r[:-1]), str(r[-1])
                if box.key_of(old) == job.target_key:
                    unchanged += 1
                    continue
                try:
                    new = box.reencrypt(old)
                except SecretError:
                    job.status = "failed"
                    job.ended_at = utcnow()
                    job.message = (
                        f"a value of {col.name} (key {list(key)}) is encrypted with no key of "
                        "the keyring; add that key and re-encrypt again"
                    )
                    return moved, True
                cond = [c == v for c, v in zip(pk, key, strict=True)]
                values: dict[Any, Any] = {col.column: new}
                if "updated_at" in col.table.c:  # the object did not change: keep its time
                    values[col.table.c.updated_at] = col.table.c.updated_at
                result = tx.session.execute(
                    update(col.table).where(*cond, col.column == old).values(values)
                )
                if result.rowcount:  # type: ignore[attr-defined]  # else: rewritten meanwhile
                    moved += 1
            job.reencrypted += moved
            job.unchanged += unchanged
            finished = len(page) < self.batch
            progress = dict(job.progress or {})
            if page:
                progress[col.name] = [_jsonable(v) for v in page[-1][:-1]]
            job.progress = progress
            if finished:
                job.done_columns = [*(job.done_columns or []), col.name]
            return moved, finished


def _jsonable(value: object) -> object:
    return value if isinstance(value, (str, int, float)) or value is None else str(value)
