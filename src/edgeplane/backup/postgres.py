"""PostgreSQL backups with PostgreSQL's own tools: base backups, WAL streamed by
``pg_receivewal``, and point-in-time recovery into a new data directory.

What this module makes and reads (raw PostgreSQL files; packing, encryption and upload are the
caller's):

- **Base backup** (:func:`base_backup`): ``pg_basebackup -Ft -z -X stream`` into a directory:
  ``base.tar.gz`` (the data directory), ``pg_wal.tar.gz`` (the WAL from the backup's start to
  its end, streamed during the backup, so the backup is consistent on its own whatever
  ``wal_keep_size`` is) and ``backup_manifest`` (SHA-256 of every file; checked by
  ``pg_verifybackup`` when the backup is restored, since PostgreSQL 15 cannot check a tar
  backup in place).
- **WAL archive** (:class:`WalArchiver`): ``pg_receivewal`` streams the WAL into a directory
  through a physical replication slot (``edgeplane_backup``), so the server keeps every segment
  the archiver has not received, even while it is down; the archiver is a child process
  restarted with a backoff when it exits (server restart, network). Complete segments carry
  their WAL file name; the segment being written ends in ``.partial``.
  An **incremental** is the WAL since the previous backup: :func:`switch_wal` (one committed
  transaction, whose commit time is the latest time a restore can reach, then
  ``pg_switch_wal()``), :meth:`WalArchiver.wait_for` that LSN, then
  :meth:`WalArchiver.collect` since the previous backup's end LSN.
- **Restore** (:func:`restore_cluster`): untar into a new data directory, check it against the
  manifest (``pg_verifybackup``), copy the WAL into a restore directory, and start the server in
  archive recovery (``recovery.signal``, ``restore_command``) up to a point in time or to the
  end of the WAL, then promoted. The server is left running on a Unix socket only (a private
  directory, ``trust`` for that socket alone: no TCP listener) for the caller to read through
  :attr:`RestoreInfo.url`, and :meth:`RestoreInfo.stop` / :meth:`RestoreInfo.discard` end it.
  :func:`scratch_cluster` is the same into a temporary directory, for verification.

Point-in-time semantics: ``recovery_target_time = T`` with ``recovery_target_inclusive = on``
(PostgreSQL's default): the restored state holds every transaction committed at or before T and
none committed after. Recovery stops *before* the first commit later than T, so T must lie in
``[covered_from, covered_to)``: from the base backup's consistent end (its start, rounded up to
the second, or the last commit inside the backup's own WAL if later) to the last commit (or
abort) in the WAL; outside it :func:`restore_cluster` refuses with "the backups cover from X to
Y" before starting anything. Recovery follows the base backup's timeline only
(``recovery_target_timeline = 'current'``); WAL of other timelines is ignored.

Requirements on the server being backed up (PostgreSQL 15 defaults cover all but the role):

- ``wal_level = replica`` (default) and ``max_wal_senders`` >= 3 (default 10: the archiver holds
  one, a base backup two), ``max_replication_slots`` >= 2 (default 10: the archiver's slot and a
  base backup's temporary one).
- A role with ``REPLICATION`` (or a superuser) in the database URL, and a ``pg_hba.conf`` line
  that lets it make replication connections from the control plane's host, for example
  ``host replication edgeplane 10.0.0.5/32 scram-sha-256`` (``all`` in the database column does
  not match replication connections). The password travels in ``PGPASSWORD``, never on a
  command line.
- ``EXECUTE`` on ``pg_switch_wal()`` for that role (superuser only by default:
  ``GRANT EXECUTE ON FUNCTION pg_switch_wal() TO edgeplane``).
- The slot (created with its WAL reserved at once, through the URL's database) keeps WAL on
  the server for as long as the archiver does not fetch it: an archiver stopped for good must
  drop it (:meth:`WalArchiver.drop_slot`), and ``max_slot_wal_keep_size`` bounds what a long
  outage can take. When the server did drop WAL the archive lacks,
  :attr:`ArchiverStatus.wal_lost` says so (streaming cannot resume by itself) and
  :meth:`WalArchiver.resync` starts a new chain, which needs a new base backup. The archiver
  must run from before the first base backup on: a restore refuses a gap in the WAL.
- Tablespaces other than the default ones are not supported.

The restoring machine needs the same PostgreSQL major version (``/usr/lib/postgresql/<major>``)
and, as root, the ``postgres`` user, which owns and runs the restored data directory.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from edgeplane.backup import pgproc
from edgeplane.backup.errors import BackupError
from edgeplane.backup.pgproc import pg_bin

__all__ = [
    "LABEL",
    "SLOT",
    "ArchiverStatus",
    "BaseBackupInfo",
    "RestoreInfo",
    "WalArchiver",
    "base_backup",
    "check_target",
    "conninfo",
    "covered_range",
    "format_lsn",
    "parse_lsn",
    "pg_bin",
    "read_base_backup",
    "restore_cluster",
    "scratch_cluster",
    "segment_name",
    "segment_of",
    "switch_wal",
    "tool_env",
]

log = logging.getLogger("edgeplane.backup")

SLOT = "edgeplane_backup"
LABEL = "edgeplane"
BASE_TAR = "base.tar.gz"
WAL_TAR = "pg_wal.tar.gz"
MANIFEST = "backup_manifest"
DEFAULT_SEGMENT_SIZE = 16 * 1024 * 1024
_SEGMENT_RE = re.compile(r"[0-9A-F]{24}")
_HISTORY_RE = re.compile(r"[0-9A-F]{8}\.history")
_SLOT_RE = re.compile(r"[a-z0-9_]{1,63}")
# A Unix socket path (DIR/.s.PGSQL.PORT) must fit in sun_path (108 bytes with the NUL).
_MAX_SOCKET_PATH = 107
_STREAM_ERRORS = 20  # the archiver's last stderr lines kept for status and errors
# pg_receivewal's lines that follow the one telling why it stopped
_TRIVIAL = ("error: disconnected", "segment is not complete")


# -- LSNs and WAL file names (pure) ---------------------------------------------------------


def parse_lsn(text: str) -> int:
    """``"16/B374D848"`` -> the 64-bit position."""
    match = re.fullmatch(r"\s*([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})\s*", text)
    if match is None:
        raise BackupError(f"not a WAL position (LSN): {text!r}")
    return (int(match.group(1), 16) << 32) | int(match.group(2), 16)


def format_lsn(value: int) -> str:
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


def segment_of(name: str, segment_size: int) -> tuple[int, int]:
    """A WAL file name -> (timeline, segment number)."""
    if not _SEGMENT_RE.fullmatch(name):
        raise BackupError(f"not a WAL segment name: {name!r}")
    per_id = 0x100000000 // segment_size
    low = int(name[16:], 16)
    if low >= per_id:
        raise BackupError(
            f"not a WAL segment name for {segment_size // 1048576} MiB segments: {name}"
        )
    return int(name[:8], 16), int(name[8:16], 16) * per_id + low


def segment_name(timeline: int, segno: int, segment_size: int) -> str:
    per_id = 0x100000000 // segment_size
    return f"{timeline:08X}{segno // per_id:08X}{segno % per_id:08X}"


# -- connections ------------------------------------------------------------------------------


def _parse_url(database_url: str) -> tuple[dict[str, str], str | None]:
    """libpq keywords and the password of a SQLAlchemy URL. The URL never reaches an error:
    it may hold a password."""
    try:
        url = make_url(database_url)
    except (ArgumentError, ValueError):
        raise BackupError("the database URL is not a valid URL") from None
    if url.get_backend_name() != "postgresql":
        raise BackupError(
            f"the database URL is not a PostgreSQL URL ({url.get_backend_name()}): "
            "expected postgresql+psycopg://user:password@host:port/database"
        )
    params: dict[str, str] = {}
    if url.host:
        params["host"] = url.host
    if url.port:
        params["port"] = str(url.port)
    if url.username:
        params["user"] = url.username
    if url.database:
        params["dbname"] = url.database
    password = url.password if url.password else None
    for key, value in url.query.items():
        text = value[-1] if isinstance(value, tuple) else value
        if key == "password":
            password = password or text
            continue
        params[key] = text
    return params, (str(password) if password is not None else None)


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def conninfo(database_url: str) -> str:
    """A libpq connection string (``host=... port=... user=... dbname=...``) from a SQLAlchemy
    URL such as ``postgresql+psycopg://user:pw@host:5432/db``, without the password (the tools
    get it through ``PGPASSWORD``, see :func:`tool_env`). Query parameters (``sslmode``, a
    socket directory as ``host``...) are kept."""
    params, _ = _parse_url(database_url)
    return " ".join(f"{key}={_quote(value)}" for key, value in params.items())


def tool_env(database_url: str | None = None) -> dict[str, str]:
    """The environment of a PostgreSQL program: English messages, UTC times, and the URL's
    password in ``PGPASSWORD``."""
    env = dict(os.environ, LC_ALL="C", LANG="C", TZ="UTC")
    if database_url is not None:
        _, password = _parse_url(database_url)
        if password is not None:
            env["PGPASSWORD"] = password
    return env


def _scrubber(database_url: str | None) -> list[str]:
    if database_url is None:
        return []
    _, password = _parse_url(database_url)
    if not password:
        return []
    return sorted({password, urllib.parse.quote(password, safe=""), urllib.parse.quote(password)})


def _scrub(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text.strip()


def _connect(database_url: str) -> psycopg.Connection[tuple[object, ...]]:
    _, password = _parse_url(database_url)
    try:
        return psycopg.connect(
            conninfo(database_url), password=password, autocommit=True, connect_timeout=15
        )
    except psycopg.Error as exc:
        raise BackupError(
            f"cannot connect to PostgreSQL: {_scrub(str(exc), _scrubber(database_url))}"
        ) from None


# -- base backups -----------------------------------------------------------------------------


@dataclass(frozen=True)
class BaseBackupInfo:
    """What a base backup directory holds, read from its manifest."""

    path: Path
    start_lsn: str
    stop_lsn: str
    timeline: int
    start_time: datetime  # when the backup started (UTC, to the second: backup_label's time)
    size: int  # bytes of the directory's files
    pg_major: int
    files: tuple[str, ...]

    @property
    def consistent_from(self) -> datetime:
        """The earliest target time this backup can serve (its start, rounded up)."""
        return self.start_time + timedelta(seconds=1)


def _read_manifest(base_dir: Path) -> dict[str, object]:
    path = base_dir / MANIFEST
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise BackupError(f"the base backup in {base_dir} has no {MANIFEST}") from None
    except (OSError, ValueError) as exc:
        raise BackupError(f"the {MANIFEST} of {base_dir} cannot be read: {exc}") from None
    if not isinstance(data, dict) or data.get("PostgreSQL-Backup-Manifest-Version") != 1:
        raise BackupError(f"the {MANIFEST} of {base_dir} is not a PostgreSQL backup manifest")
    return data


def _pg_version_in_tar(tar_path: Path) -> int:
    """The major version in a base tar's PG_VERSION (near its start: read as a stream)."""
    try:
        with tarfile.open(tar_path, mode="r|gz") as tar:
            for member in tar:
                if member.name == "PG_VERSION":
                    handle = tar.extractfile(member)
                    if handle is None:
                        break
                    return int(handle.read().decode().strip())
    except (OSError, tarfile.TarError, ValueError) as exc:
        raise BackupError(f"{tar_path.name} is not a readable base backup: {exc}") from None
    raise BackupError(f"{tar_path.name} has no PG_VERSION: not a PostgreSQL base backup")


def read_base_backup(base_dir: Path) -> BaseBackupInfo:
    """Describe a base backup directory (``base.tar.gz``, ``pg_wal.tar.gz``,
    ``backup_manifest``) from its manifest, without unpacking it."""
    base_dir = Path(base_dir)
    if not (base_dir / BASE_TAR).is_file():
        raise BackupError(f"{base_dir} holds no {BASE_TAR}: not a base backup")
    manifest = _read_manifest(base_dir)
    extra = sorted(p.name for p in base_dir.glob("*.tar*") if p.name not in (BASE_TAR, WAL_TAR))
    if extra:
        raise BackupError(
            f"the base backup holds tablespaces ({', '.join(extra)}), which are not supported"
        )
    ranges = manifest.get("WAL-Ranges")
    files = manifest.get("Files")
    if not isinstance(ranges, list) or not ranges or not isinstance(files, list):
        raise BackupError(f"the {MANIFEST} of {base_dir} has no WAL range")
    try:
        timeline = int(ranges[0]["Timeline"])
        start_lsn = format_lsn(parse_lsn(str(ranges[0]["Start-LSN"])))
        stop_lsn = format_lsn(parse_lsn(str(ranges[-1]["End-LSN"])))
        label = next(f for f in files if f.get("Path") == "backup_label")
        start_time = datetime.strptime(
            str(label["Last-Modified"]), "%Y-%m-%d %H:%M:%S GMT"
        ).replace(tzinfo=UTC)
    except (KeyError, TypeError, ValueError, StopIteration):
        raise BackupError(f"the {MANIFEST} of {base_dir} is incomplete") from None
    names = tuple(sorted(p.name for p in base_dir.iterdir() if p.is_file()))
    return BaseBackupInfo(
        path=base_dir,
        start_lsn=start_lsn,
        stop_lsn=stop_lsn,
        timeline=timeline,
        start_time=start_time,
        size=sum((base_dir / n).stat().st_size for n in names),
        pg_major=_pg_version_in_tar(base_dir / BASE_TAR),
        files=names,
    )


def base_backup(
    database_url: str, out_dir: Path, *, timeout: float | None = None
) -> BaseBackupInfo:
    """A base backup of the server at ``database_url`` into ``out_dir`` (absent or empty):
    ``pg_basebackup -Ft -z -X stream --checkpoint=fast --manifest-checksums=SHA256``.

    ``-X stream`` rather than ``-X fetch``: the WAL the backup needs is streamed while it runs
    (one more WAL sender), so it cannot be recycled before the backup ends.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise BackupError(f"the base backup's directory {out_dir} is not empty")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    argv = [
        pg_bin("pg_basebackup"),
        "--dbname",
        conninfo(database_url),
        "--pgdata",
        str(out_dir),
        "--format=tar",
        "--gzip",
        "--wal-method=stream",
        "--checkpoint=fast",
        "--manifest-checksums=SHA256",
        "--label",
        LABEL,
        "--no-password",
    ]
    result = pgproc.run(argv, env=tool_env(database_url), timeout=timeout)
    if result.returncode != 0:
        detail = _scrub(result.stderr or result.stdout, _scrubber(database_url))
        raise BackupError(f"pg_basebackup failed: {detail}")
    for name in (BASE_TAR, MANIFEST):
        if not (out_dir / name).is_file():
            raise BackupError(f"pg_basebackup finished but wrote no {name} in {out_dir}")
    info = read_base_backup(out_dir)
    log.info(
        "base backup %s: WAL %s to %s, %d bytes", out_dir, info.start_lsn, info.stop_lsn, info.size
    )
    return info


# -- WAL archiving ----------------------------------------------------------------------------


def switch_wal(database_url: str) -> str:
    """Close the current WAL segment so that the archiver completes it; the LSN returned is
    where the next segment starts (everything before it is in complete segments).

    A transaction is committed first (``pg_current_xact_id()``): its commit record carries the
    current time, so a restore can reach any time up to this call.
    """
    with _connect(database_url) as conn:
        try:
            conn.execute("SELECT pg_current_xact_id()")
            row = conn.execute("SELECT pg_switch_wal()::text").fetchone()
        except psycopg.errors.InsufficientPrivilege:
            raise BackupError(
                "the database role may not call pg_switch_wal(): grant it with"
                " GRANT EXECUTE ON FUNCTION pg_switch_wal() TO <role>"
            ) from None
        except psycopg.Error as exc:
            raise BackupError(
                f"pg_switch_wal() failed: {_scrub(str(exc), _scrubber(database_url))}"
            ) from None
    assert row is not None
    return format_lsn(parse_lsn(str(row[0])))


@dataclass(frozen=True)
class ArchiverStatus:
    running: bool  # the supervisor is on (it restarts pg_receivewal when it exits)
    streaming: bool  # pg_receivewal is alive right now
    pid: int | None
    restarts: int
    last_error: str  # pg_receivewal's last complaint (password-free), "" if none
    # The server no longer has WAL the archive lacks (the slot was dropped, or invalidated by
    # max_slot_wal_keep_size): streaming cannot resume by itself; see WalArchiver.resync.
    wal_lost: bool = False


def _segment_size(directory: Path) -> int:
    """The WAL segment size, from the size of the segment files (complete or pre-padded
    ``.partial``) in ``directory``; PostgreSQL's default when there is none yet."""
    for path in sorted(directory.iterdir()) if directory.is_dir() else []:
        stem = path.name.removesuffix(".partial")
        if _SEGMENT_RE.fullmatch(stem):
            size = path.stat().st_size
            if size >= 1024 * 1024 and size & (size - 1) == 0:
                return size
    return DEFAULT_SEGMENT_SIZE


class WalArchiver:
    """``pg_receivewal`` streaming the WAL of ``database_url`` into ``wal_dir`` through the
    physical replication slot ``slot``, supervised: restarted with a backoff whenever it exits
    until :meth:`stop`.

    Typical use by the control plane::

        archiver = WalArchiver(url, home / "backups" / "wal")
        archiver.start()              # before the first base backup
        ...
        end = switch_wal(url)         # an incremental: everything up to now
        archiver.wait_for(end)
        files = archiver.collect(since_lsn=previous_end)
    """

    BACKOFF = (0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
    _STABLE_AFTER = 30.0  # a run this long resets the backoff

    def __init__(self, database_url: str, wal_dir: Path, *, slot: str = SLOT) -> None:
        if not _SLOT_RE.fullmatch(slot):
            raise BackupError(
                f"slot: {slot!r} is not a replication slot name (lower case letters, digits, _)"
            )
        conninfo(database_url)  # a bad URL fails here, not in the thread
        self.database_url = database_url
        self.wal_dir = Path(wal_dir)
        self.slot = slot
        self._secrets = _scrubber(database_url)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._proc: subprocess.Popen[str] | None = None
        self._errors: list[str] = []
        self._restarts = 0

    # -- lifecycle

    def start(self) -> None:
        """Create the slot (if missing) and start streaming. Raises BackupError when the slot
        cannot be created (no replication permission, pg_hba, server down)."""
        if self.running:
            return
        pg_bin("pg_receivewal")  # missing: fail here, not in the thread
        self.wal_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.wal_dir, 0o700)
        self._create_slot()
        self._stopping.clear()
        self._thread = threading.Thread(
            target=self._supervise, name=f"wal-archiver-{self.slot}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 15.0) -> None:
        """Stop streaming (pg_receivewal flushes and exits on SIGINT). The slot stays: the
        server keeps the WAL until the archiver runs again."""
        self._stopping.set()
        with self._lock:
            proc = self._proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGINT)
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive() and proc is not None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                thread.join(5)
        self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stopping.is_set()

    def status(self) -> ArchiverStatus:
        with self._lock:
            proc = self._proc
            errors = list(self._errors)
        alive = proc is not None and proc.poll() is None
        telling = [e for e in errors if not e.endswith(_TRIVIAL)]
        return ArchiverStatus(
            running=self.running,
            streaming=alive,
            pid=proc.pid if proc is not None and alive else None,
            restarts=self._restarts,
            last_error=telling[-1] if telling else "",
            wal_lost=any("has already been removed" in e for e in telling[-3:]),
        )

    def resync(self) -> Path | None:
        """Start again from what the server has, after WAL was lost
        (:attr:`ArchiverStatus.wal_lost`): the archived files move aside into
        ``superseded-<time>/`` (returned; None when there were none) and streaming restarts
        at the slot's position. The chain of incrementals is broken there: the next backup
        must be a full one."""
        self.stop()
        files = [p for p in self.wal_dir.iterdir() if p.is_file()] if self.wal_dir.is_dir() else []
        aside = None
        if files:
            aside = self.wal_dir / f"superseded-{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}"
            aside.mkdir()
            for path in files:
                path.rename(aside / path.name)
        with self._lock:
            self._errors = []
        # The slot went back to where the archiver asked to start (its first report): a
        # position the server no longer has. A new one holds the server's present.
        self._drop_slot_when_idle()
        self.start()
        return aside

    def _drop_slot_when_idle(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        with _connect(self.database_url) as conn:
            while True:
                row = conn.execute(
                    "SELECT active FROM pg_replication_slots WHERE slot_name = %s", (self.slot,)
                ).fetchone()
                if row is None:
                    return
                if not row[0]:
                    with contextlib.suppress(psycopg.errors.UndefinedObject):
                        conn.execute("SELECT pg_drop_replication_slot(%s)", (self.slot,))
                    return
                if time.monotonic() > deadline:
                    raise BackupError(f"the replication slot {self.slot} is still in use")
                time.sleep(0.1)

    def drop_slot(self) -> None:
        """Drop the replication slot (the archiver is retired: the server may recycle WAL)."""
        self.stop()
        self._drop_slot_when_idle()

    # -- what the archive holds

    def collect(self, since_lsn: str | None = None, *, include_partial: bool = False) -> list[Path]:
        """The complete WAL segments holding WAL at or after ``since_lsn`` (all of them when
        None), and the timeline history files, in order.

        With ``include_partial``, also the ``.partial`` segment being written (the newest WAL,
        for a restore after losing the server: :func:`restore_cluster` uses it under its
        segment name when no complete copy exists). An incremental does not need it:
        :func:`switch_wal` then :meth:`wait_for` make the WAL up to now complete.
        """
        if not self.wal_dir.is_dir():
            return []
        size = _segment_size(self.wal_dir)
        since = parse_lsn(since_lsn) if since_lsn is not None else 0
        found: list[tuple[int, int, Path]] = []
        for path in self.wal_dir.iterdir():
            name = path.name
            if _HISTORY_RE.fullmatch(name):
                found.append((-1, int(name[:8], 16), path))
                continue
            partial = name.endswith(".partial")
            if partial and not include_partial:
                continue
            stem = name.removesuffix(".partial")
            if not _SEGMENT_RE.fullmatch(stem):
                continue
            timeline, segno = segment_of(stem, size)
            if (segno + 1) * size > since:
                found.append((segno, timeline, path))
        return [p for _, _, p in sorted(found, key=lambda t: (t[0], t[1], t[2].name))]

    def wait_for(self, lsn: str, timeout: float = 60.0) -> None:
        """Wait until complete segments hold all the WAL before ``lsn`` (as returned by
        :func:`switch_wal`)."""
        target = parse_lsn(lsn)
        deadline = time.monotonic() + timeout
        while True:
            size = _segment_size(self.wal_dir)
            needed = (target - 1) // size
            if any(
                _SEGMENT_RE.fullmatch(p.name) and segment_of(p.name, size)[1] >= needed
                for p in (self.wal_dir.iterdir() if self.wal_dir.is_dir() else [])
            ):
                return
            if time.monotonic() > deadline:
                status = self.status()
                why = f" (pg_receivewal: {status.last_error})" if status.last_error else ""
                raise BackupError(
                    f"the WAL up to {lsn} did not reach {self.wal_dir} within {timeout:.0f} s{why}"
                )
            time.sleep(0.05)

    def prune(self, before_lsn: str) -> int:
        """Delete the complete segments that hold only WAL before ``before_lsn`` (the start of
        the oldest base backup kept); the number deleted."""
        limit = parse_lsn(before_lsn)
        size = _segment_size(self.wal_dir)
        count = 0
        for path in list(self.wal_dir.iterdir()) if self.wal_dir.is_dir() else []:
            if (
                _SEGMENT_RE.fullmatch(path.name)
                and (segment_of(path.name, size)[1] + 1) * size <= limit
            ):
                path.unlink()
                count += 1
        return count

    # -- internals

    def _create_slot(self) -> None:
        """Create the slot with its WAL reserved at once.

        ``pg_receivewal --create-slot`` makes a slot that holds nothing until the archiver's
        first status report: a checkpoint in between (a base backup's, just after the archiver
        started) may recycle the segment it starts from, and it can never resume ("requested
        WAL segment ... has already been removed"; seen here with the tests run three at a
        time). A slot without a position and not in use (also one that
        ``max_slot_wal_keep_size`` invalidated) is made again.
        """
        with _connect(self.database_url) as conn:
            try:
                row = conn.execute(
                    "SELECT restart_lsn IS NOT NULL, active FROM pg_replication_slots"
                    " WHERE slot_name = %s",
                    (self.slot,),
                ).fetchone()
                if row is not None and not row[0] and not row[1]:
                    conn.execute("SELECT pg_drop_replication_slot(%s)", (self.slot,))
                    row = None
                if row is None:
                    conn.execute(
                        "SELECT pg_create_physical_replication_slot(%s, true)", (self.slot,)
                    )
            except psycopg.errors.DuplicateObject:
                pass  # made meanwhile by another archiver of the same slot
            except psycopg.Error as exc:
                raise BackupError(
                    f"cannot create the replication slot {self.slot}: "
                    f"{_scrub(str(exc), self._secrets)} (the role needs REPLICATION)"
                ) from None

    def _note(self, line: str, *, keep: bool = True) -> None:
        """Log a line of pg_receivewal's (kept for :meth:`status` when ``keep``)."""
        line = _scrub(line, self._secrets)
        if not line:
            return
        if keep:
            with self._lock:
                self._errors = [*self._errors[-(_STREAM_ERRORS - 1) :], line]
        log.warning("WAL archiver: %s", line)

    def _supervise(self) -> None:
        attempt = 0
        argv = [
            pg_bin("pg_receivewal"),
            "--dbname",
            conninfo(self.database_url),
            "--directory",
            str(self.wal_dir),
            "--slot",
            self.slot,
            "--no-loop",  # exits when the connection drops: the backoff below is ours
            # reports its position every second: the slot advances, and pg_stat_replication
            # shows the archiver's lag (an RPO figure) within a second
            "--status-interval=1",
            "--no-password",
        ]
        env = tool_env(self.database_url)
        while not self._stopping.is_set():
            if attempt > 0:
                # A server restored or re-created since may have lost the slot.
                with contextlib.suppress(BackupError):
                    self._create_slot()
            started = time.monotonic()
            try:
                proc = subprocess.Popen(
                    argv,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    text=True,
                    errors="replace",
                )
            except OSError as exc:
                self._note(f"cannot start pg_receivewal: {exc}")
                proc = None
            if proc is not None:
                with self._lock:
                    self._proc = proc
                if self._stopping.is_set():
                    proc.send_signal(signal.SIGINT)
                assert proc.stderr is not None
                for line in proc.stderr:
                    self._note(line)
                code = proc.wait()
                if self._stopping.is_set():
                    break
                self._note(f"pg_receivewal exited ({code}); restarting", keep=False)
            if time.monotonic() - started > self._STABLE_AFTER:
                attempt = 0
            delay = self.BACKOFF[min(attempt, len(self.BACKOFF) - 1)]
            attempt += 1
            self._restarts += 1
            self._stopping.wait(delay)
        with self._lock:
            self._proc = None


# -- restore ----------------------------------------------------------------------------------

_TS_RE = re.compile(
    r"lsn: ([0-9A-F]+/[0-9A-F]+),.*desc: (?:COMMIT|ABORT)(?:_PREPARED)?(?: \d+:)? "
    r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?) (?:UTC|GMT)"
)


def _transaction_times(output: str) -> list[tuple[int, datetime]]:
    """(LSN, time) of the commit and abort records in ``pg_waldump -r Transaction`` output."""
    found = []
    for match in _TS_RE.finditer(output):
        stamp = match.group(2)
        fmt = "%Y-%m-%d %H:%M:%S.%f" if "." in stamp else "%Y-%m-%d %H:%M:%S"
        found.append((parse_lsn(match.group(1)), datetime.strptime(stamp, fmt).replace(tzinfo=UTC)))
    return found


def _waldump(major: int, wal_dir: Path, timeline: int, *args: str) -> list[tuple[int, datetime]]:
    result = pgproc.run(
        [
            pg_bin("pg_waldump", major),
            "--path",
            str(wal_dir),
            "--timeline",
            str(timeline),
            "--rmgr=Transaction",
            *args,
        ],
        env=tool_env(),
        timeout=600,
    )
    # Reading stops with an error at the end of the WAL (a record cut short, no next file).
    benign = (
        "invalid record length",
        "could not find file",
        "error in WAL record",
        "invalid magic number",
        "contrecord is requested",
        "invalid record offset",
    )
    if result.returncode != 0 and not any(b in result.stderr for b in benign):
        raise BackupError(f"pg_waldump cannot read the WAL: {result.stderr.strip()}")
    return _transaction_times(result.stdout)


def covered_range(
    info: BaseBackupInfo, wal_dir: Path, last_segno: int, segment_size: int
) -> tuple[datetime, datetime]:
    """The times a restore of this base backup with the WAL in ``wal_dir`` can reach:
    from the backup's consistent point to the last transaction in the WAL."""
    inside = _waldump(
        info.pg_major, wal_dir, info.timeline, f"--start={info.start_lsn}", f"--end={info.stop_lsn}"
    )
    lower = max([info.consistent_from, *(t for _, t in inside)])
    first = parse_lsn(info.start_lsn) // segment_size
    for segno in range(last_segno, first - 1, -1):
        name = segment_name(info.timeline, segno, segment_size)
        times = _waldump(info.pg_major, wal_dir, info.timeline, name, name)
        if times:
            return lower, max(lower, max(t for _, t in times))
    return lower, lower


def _stamp(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(sep=" ", timespec="seconds")


def check_target(target: datetime, covered: tuple[datetime, datetime]) -> None:
    """A target time must lie in [from, to): recovery stops before the first commit after it."""
    lower, upper = covered
    if not lower <= target < upper:
        where = "before the base backup" if target < lower else "after the last transaction"
        raise BackupError(
            f"no restore to {_stamp(target)} ({where}): the backups cover from"
            f" {_stamp(lower)} to {_stamp(upper)}"
        )


@dataclass
class RestoreInfo:
    """A restored cluster, promoted and running (until :meth:`stop`), and what it reached."""

    data_dir: Path
    port: int
    socket_dir: Path
    user: str
    database: str
    pg_major: int
    target_time: datetime | None
    reached_lsn: str  # the last WAL record replayed
    reached_time: datetime | None  # the last transaction replayed (None: none after the backup)
    timeline: int  # the new timeline, after promotion
    covered_from: datetime
    covered_to: datetime
    wal_segments: int  # segments taken from ``wal_dirs`` (the rest from the base backup)
    base: BaseBackupInfo
    _run_dir: Path = field(repr=False)
    _created_data_dir: bool = field(default=True, repr=False)

    @property
    def url(self) -> str:
        """SQLAlchemy URL (psycopg) of ``database`` on the restored server (its Unix socket)."""
        return self.url_for(self.database)

    def url_for(self, database: str) -> str:
        query = urllib.parse.urlencode({"host": str(self.socket_dir), "port": str(self.port)})
        return (
            f"postgresql+psycopg://{urllib.parse.quote(self.user, safe='')}@/"
            f"{urllib.parse.quote(database, safe='')}?{query}"
        )

    @property
    def running(self) -> bool:
        return _postmaster_alive(self.data_dir)

    def stop(self) -> None:
        """Stop the server (fast shutdown) and remove its socket directory; the data directory
        stays, ready to run (:meth:`start_command`)."""
        if self.running:
            result = pgproc.run(
                [
                    pg_bin("pg_ctl", self.pg_major),
                    "--pgdata",
                    str(self.data_dir),
                    "--mode=fast",
                    "--wait",
                    "--timeout=60",
                    "stop",
                ],
                env=tool_env(),
                as_service=True,
                timeout=90,
            )
            if result.returncode != 0 and self.running:
                raise BackupError(f"the restored server did not stop: {result.stderr.strip()}")
        # the options of this run (a socket and an hba file that are gone): never reused by a
        # later `pg_ctl restart`
        (self.data_dir / "postmaster.opts").unlink(missing_ok=True)
        shutil.rmtree(self._run_dir, ignore_errors=True)

    def discard(self) -> None:
        """Stop the server and delete the data directory (a scratch restore)."""
        self.stop()
        if self._created_data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        else:
            _empty(self.data_dir)

    def start_command(self, log_file: Path | None = None) -> str:
        """The shell command an operator runs to start the restored data directory with its
        own configuration (the source's ``postgresql.conf`` and ``pg_hba.conf``: check its
        ``port``, ``listen_addresses`` and ``unix_socket_directories`` first)."""
        log_path = log_file or self.data_dir.parent / f"{self.data_dir.name}.log"
        argv = pgproc.service_argv(
            [
                pg_bin("pg_ctl", self.pg_major),
                "-D",
                str(self.data_dir),
                "-l",
                str(log_path),
                "start",
            ]
        )
        return shlex.join(argv)

    def __enter__(self) -> RestoreInfo:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _postmaster_alive(data_dir: Path) -> bool:
    try:
        pid = int((data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        os.kill(pid, 0)
    except (OSError, ValueError):
        return False
    return True


def _empty(directory: Path) -> None:
    for child in directory.iterdir() if directory.is_dir() else []:
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _untar(tar_path: Path, into: Path) -> None:
    """Unpack as the server's user (so it owns every file), reading the archive through stdin
    (the backup's own files may be private to the caller)."""
    with tar_path.open("rb") as fh:
        result = pgproc.run(
            ["tar", "-x", "-z", "-f", "-", "-C", str(into), "--no-same-owner"],
            stdin=fh,
            as_service=True,
            timeout=3600,
        )
    if result.returncode != 0:
        raise BackupError(f"cannot unpack {tar_path.name}: {result.stderr.strip()}")


def _gather_wal(
    wal_dirs: list[Path], base_wal: Path, timeline: int, segment_size: int
) -> dict[int, Path]:
    """segment number -> the file to restore it from, on ``timeline``: a complete segment from
    the archive first, then a ``.partial`` one (the newest WAL of a lost server), then the base
    backup's own copy."""
    complete: dict[int, Path] = {}
    partial: dict[int, Path] = {}
    for directory in [Path(d) for d in wal_dirs]:
        if not directory.is_dir():
            raise BackupError(f"the WAL directory {directory} does not exist")
        for path in directory.iterdir():
            stem = path.name.removesuffix(".partial")
            if not _SEGMENT_RE.fullmatch(stem) or not path.is_file():
                continue
            tli, segno = segment_of(stem, segment_size)
            if tli != timeline:
                continue
            if path.name.endswith(".partial"):
                partial.setdefault(segno, path)
            else:
                complete.setdefault(segno, path)
    chosen = dict(partial)
    chosen.update(complete)
    for path in base_wal.iterdir() if base_wal.is_dir() else []:
        if _SEGMENT_RE.fullmatch(path.name):
            tli, segno = segment_of(path.name, segment_size)
            if tli == timeline:
                chosen.setdefault(segno, path)
    return chosen


def _check_contiguous(chosen: dict[int, Path], first: int, timeline: int, size: int) -> int:
    """The last segment number; a gap between the base backup and it is an error."""
    last = max(chosen)
    missing = [s for s in range(first, last + 1) if s not in chosen]
    if missing:
        names = ", ".join(segment_name(timeline, s, size) for s in missing[:3])
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise BackupError(
            f"the WAL has a gap: segment {names}{more} missing between the base backup"
            f" ({segment_name(timeline, first, size)}) and the last segment"
            f" ({segment_name(timeline, last, size)})"
        )
    return last


def _complete_config(data_dir: Path) -> None:
    """A data directory whose configuration lived elsewhere (Debian's /etc/postgresql) gets
    minimal files, so that it can start."""
    defaults = {
        "postgresql.conf": "# written by edgeplane restore: the source kept its configuration"
        " outside its data directory\nlisten_addresses = 'localhost'\n",
        "pg_hba.conf": "# written by edgeplane restore\n"
        "local all all peer\n"
        "host all all 127.0.0.1/32 scram-sha-256\n"
        "host all all ::1/128 scram-sha-256\n"
        "local replication all peer\n"
        "host replication all 127.0.0.1/32 scram-sha-256\n",
        "pg_ident.conf": "# written by edgeplane restore\n",
    }
    for name, text in defaults.items():
        path = data_dir / name
        if not path.exists():
            path.write_text(text)
            os.chmod(path, 0o600)
            pgproc.give_to_service_user(path)


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def restore_cluster(
    base_tar_dir: Path,
    wal_dirs: list[Path],
    data_dir: Path,
    *,
    target_time: datetime | None = None,
    port: int | None = None,
    user: str = "postgres",
    database: str = "postgres",
    timeout: float = 600.0,
) -> RestoreInfo:
    """Restore a base backup and the WAL of ``wal_dirs`` into the new ``data_dir`` (absent or
    empty) up to ``target_time`` (tz-aware; None: the end of the WAL), and leave the server
    running, promoted, on a Unix socket for ``port`` in a private directory.

    ``user`` is a role of the restored cluster (the source's backup role) and ``database`` the
    database :attr:`RestoreInfo.url` points at. On failure nothing is left running and the data
    directory is emptied again.
    """
    base_tar_dir, data_dir = Path(base_tar_dir), Path(data_dir).absolute()
    if target_time is not None and target_time.utcoffset() is None:
        raise BackupError("target_time must carry a time zone (for example 2026-01-31T12:00Z)")
    info = read_base_backup(base_tar_dir)
    major = info.pg_major
    pg_bin("postgres", major)  # the server of the backup's version must be installed
    if data_dir.exists() and (not data_dir.is_dir() or any(data_dir.iterdir())):
        raise BackupError(f"the data directory {data_dir} is not empty: nothing is overwritten")
    created = not data_dir.exists()
    data_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(data_dir, 0o700)
    pgproc.make_reachable(data_dir)
    pgproc.give_to_service_user(data_dir)
    run_dir = Path(tempfile.mkdtemp(prefix="edgeplane-pgrestore-"))
    ok = False
    try:
        if len(str(run_dir)) + len("/.s.PGSQL.65535") > _MAX_SOCKET_PATH:
            raise BackupError(f"the temporary folder {run_dir} is too long for a Unix socket")
        if any(c in str(run_dir) for c in "\"'$`\\\n"):
            raise BackupError(f"the temporary folder {run_dir} has characters a shell would read")
        pgproc.make_reachable(run_dir)
        restore = run_dir / "wal"
        restore.mkdir()
        (run_dir / "pg_hba.conf").write_text("local all all trust\n")
        (run_dir / "pg_ident.conf").write_text("")
        pgproc.give_to_service_user(run_dir)

        started = time.monotonic()
        _untar(base_tar_dir / BASE_TAR, data_dir)
        if (base_tar_dir / WAL_TAR).is_file():
            _untar(base_tar_dir / WAL_TAR, data_dir / "pg_wal")
        verify = pgproc.run(
            [
                pg_bin("pg_verifybackup", major),
                "--manifest-path",
                str(base_tar_dir / MANIFEST),
                str(data_dir),
            ],
            env=tool_env(),
            timeout=3600,
        )
        if verify.returncode != 0:
            raise BackupError(
                f"the base backup does not match its manifest: {verify.stderr.strip()}"
            )
        log.info("restore: unpacked and verified in %.1f s", time.monotonic() - started)

        size = _segment_size(data_dir / "pg_wal")
        chosen = _gather_wal(wal_dirs, data_dir / "pg_wal", info.timeline, size)
        first = parse_lsn(info.start_lsn) // size
        chosen = {s: p for s, p in chosen.items() if s >= first}
        if first not in chosen:
            raise BackupError("the base backup lacks its own WAL (pg_wal.tar.gz)")
        last = _check_contiguous(chosen, first, info.timeline, size)
        archived = 0
        for segno, source in chosen.items():
            target = restore / segment_name(info.timeline, segno, size)
            shutil.copyfile(source, target)
            archived += source.parent != data_dir / "pg_wal"
        pgproc.give_to_service_user(restore)
        covered = covered_range(info, restore, last, size)
        if target_time is not None:
            check_target(target_time, covered)
        _complete_config(data_dir)
        (data_dir / "recovery.signal").write_text("")
        pgproc.give_to_service_user(data_dir / "recovery.signal")

        port = port or _free_port()
        settings = {
            "listen_addresses": "",
            "unix_socket_directories": str(run_dir),
            "hba_file": str(run_dir / "pg_hba.conf"),
            "ident_file": str(run_dir / "pg_ident.conf"),
            "archive_mode": "off",
            "hot_standby": "off",
            "ssl": "off",
            "synchronous_standby_names": "",
            "logging_collector": "off",
            "log_destination": "stderr",
            "lc_messages": "C",
            "restore_command": f'cp "{restore}/%f" "%p"',
            "recovery_target_timeline": "current",
        }
        if target_time is not None:
            settings |= {
                "recovery_target_time": target_time.astimezone(UTC).isoformat(sep=" "),
                "recovery_target_inclusive": "on",
                "recovery_target_action": "promote",
            }
        options = ["-p", str(port)]
        for key, value in settings.items():
            options += ["-c", f"{key}={value}"]
        log_file = run_dir / "postgres.log"
        started = time.monotonic()
        result = pgproc.run(
            [
                pg_bin("pg_ctl", major),
                "--pgdata",
                str(data_dir),
                "--log",
                str(log_file),
                "--wait",
                f"--timeout={int(timeout)}",
                "-o",
                shlex.join(options),
                "start",
            ],
            env=tool_env(),
            as_service=True,
            timeout=timeout + 30,
        )
        if result.returncode != 0:
            raise _recovery_failed(log_file, target_time, covered)
        reached = _promoted(run_dir, port, user, database, timeout)
        log.info("restore: recovery and promotion in %.1f s", time.monotonic() - started)
        shutil.rmtree(restore, ignore_errors=True)
        restored = RestoreInfo(
            data_dir=data_dir,
            port=port,
            socket_dir=run_dir,
            user=user,
            database=database,
            pg_major=major,
            target_time=target_time,
            reached_lsn=reached[0],
            reached_time=reached[1],
            timeline=reached[2],
            covered_from=covered[0],
            covered_to=covered[1],
            wal_segments=archived,
            base=info,
            _run_dir=run_dir,
            _created_data_dir=created,
        )
        ok = True
        return restored
    finally:
        if not ok:
            _abandon(data_dir, run_dir, major, created)


def _recovery_failed(
    log_file: Path, target: datetime | None, covered: tuple[datetime, datetime]
) -> BackupError:
    tail = _log_tail(log_file)
    if target is not None and (
        "recovery ended before configured recovery target was reached" in tail
        or "before consistent recovery point" in tail
    ):
        return BackupError(
            f"no restore to {_stamp(target)}: the backups cover from {_stamp(covered[0])}"
            f" to {_stamp(covered[1])}"
        )
    return BackupError(f"PostgreSQL did not finish the recovery:\n{tail}")


def _promoted(
    socket_dir: Path, port: int, user: str, database: str, timeout: float
) -> tuple[str, datetime | None, int]:
    """Wait until the server is out of recovery; (last LSN replayed, last transaction time
    replayed, the new timeline)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect(
                host=str(socket_dir),
                port=port,
                user=user,
                dbname=database,
                autocommit=True,
                connect_timeout=10,
            ) as conn:
                row = conn.execute(
                    "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn()::text,"
                    " pg_last_xact_replay_timestamp()"
                ).fetchone()
                assert row is not None
                if not row[0]:
                    tli_row = conn.execute(
                        "SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)"
                    ).fetchone()
                    assert tli_row is not None
                    when = row[2]
                    return (
                        format_lsn(parse_lsn(str(row[1]))),
                        when.astimezone(UTC) if isinstance(when, datetime) else None,
                        int(str(tli_row[0]), 16),
                    )
        except psycopg.OperationalError as exc:
            message = str(exc)
            if "does not exist" in message:
                raise BackupError(
                    f"the restored server has no {'role' if 'role' in message else 'database'}"
                    f" to connect with: {message.strip()}"
                ) from None
            if time.monotonic() > deadline:
                raise BackupError(f"the restored server does not answer: {message}") from None
        if time.monotonic() > deadline:
            raise BackupError(f"the restored server was still in recovery after {timeout:.0f} s")
        time.sleep(0.1)


def _abandon(data_dir: Path, run_dir: Path, major: int, created: bool) -> None:
    """After a failed restore: no server left running, no half-restored data directory."""
    if _postmaster_alive(data_dir):
        pgproc.run(
            [
                pg_bin("pg_ctl", major),
                "--pgdata",
                str(data_dir),
                "--mode=immediate",
                "--wait",
                "--timeout=60",
                "stop",
            ],
            env=tool_env(),
            as_service=True,
            timeout=90,
        )
    shutil.rmtree(run_dir, ignore_errors=True)
    if created:
        shutil.rmtree(data_dir, ignore_errors=True)
    else:
        _empty(data_dir)


@contextlib.contextmanager
def scratch_cluster(
    base_tar_dir: Path,
    wal_dirs: list[Path],
    *,
    target_time: datetime | None = None,
    user: str = "postgres",
    database: str = "postgres",
    timeout: float = 600.0,
) -> Iterator[RestoreInfo]:
    """A throwaway restore (verification): :func:`restore_cluster` into a temporary directory,
    yielded running; stopped and deleted afterwards."""
    base = Path(tempfile.mkdtemp(prefix="edgeplane-pgscratch-"))
    try:
        restored = restore_cluster(
            base_tar_dir,
            wal_dirs,
            base / "data",
            target_time=target_time,
            user=user,
            database=database,
            timeout=timeout,
        )
        try:
            yield restored
        finally:
            restored.discard()
    finally:
        shutil.rmtree(base, ignore_errors=True)
