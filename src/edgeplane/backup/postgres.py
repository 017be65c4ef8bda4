"""PostgreSQL backups with PostgreSQL's own tools: base backups (here, with the connections and
the LSN and WAL file name arithmetic the others share), WAL streamed by ``pg_receivewal``
(``edgeplane.backup.wal_archive``), and point-in-time recovery into a new data directory
(``edgeplane.backup.pitr``).

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

import json
import logging
import os
import re
import tarfile
import urllib.parse
from dataclasses import dataclass
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
    "BaseBackupInfo",
    "base_backup",
    "conninfo",
    "format_lsn",
    "parse_lsn",
    "pg_bin",
    "read_base_backup",
    "segment_name",
    "segment_of",
]

log = logging.getLogger("edgeplane.backup")

SLOT = "edgeplane_backup"
LABEL = "edgeplane"
BASE_TAR = "base.tar.gz"
WAL_TAR = "pg_wal.tar.gz"
MANIFEST = "backup_manifest"
DEFAULT_SEGMENT_SIZE = 16 * 1024 * 1024
SEGMENT_RE = re.compile(r"[0-9A-F]{24}")
HISTORY_RE = re.compile(r"[0-9A-F]{8}\.history")


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
    if not SEGMENT_RE.fullmatch(name):
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


def scrubber(database_url: str | None) -> list[str]:
    if database_url is None:
        return []
    _, password = _parse_url(database_url)
    if not password:
        return []
    return sorted({password, urllib.parse.quote(password, safe=""), urllib.parse.quote(password)})


def scrub(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text.strip()


def connect(database_url: str) -> psycopg.Connection[tuple[object, ...]]:
    _, password = _parse_url(database_url)
    try:
        return psycopg.connect(
            conninfo(database_url), password=password, autocommit=True, connect_timeout=15
        )
    except psycopg.Error as exc:
        raise BackupError(
            f"cannot connect to PostgreSQL: {scrub(str(exc), scrubber(database_url))}"
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
        detail = scrub(result.stderr or result.stdout, scrubber(database_url))
        raise BackupError(f"pg_basebackup failed: {detail}")
    for name in (BASE_TAR, MANIFEST):
        if not (out_dir / name).is_file():
            raise BackupError(f"pg_basebackup finished but wrote no {name} in {out_dir}")
    info = read_base_backup(out_dir)
    log.info(
        "base backup %s: WAL %s to %s, %d bytes", out_dir, info.start_lsn, info.stop_lsn, info.size
    )
    return info


def segment_size_in(directory: Path) -> int:
    """The WAL segment size, from the size of the segment files (complete or pre-padded
    ``.partial``) in ``directory``; PostgreSQL's default when there is none yet."""
    for path in sorted(directory.iterdir()) if directory.is_dir() else []:
        stem = path.name.removesuffix(".partial")
        if SEGMENT_RE.fullmatch(stem):
            size = path.stat().st_size
            if size >= 1024 * 1024 and size & (size - 1) == 0:
                return size
    return DEFAULT_SEGMENT_SIZE
