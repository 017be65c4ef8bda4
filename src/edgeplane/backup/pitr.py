"""Point-in-time recovery: a base backup and the WAL after it restored into a new data directory,
recovered up to a time (or the end of the WAL), checked and promoted
(``edgeplane.backup.postgres`` tells the whole story)."""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import socket
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from edgeplane.backup import pgproc
from edgeplane.backup.errors import BackupError
from edgeplane.backup.pgproc import pg_bin
from edgeplane.backup.postgres import (
    BASE_TAR,
    MANIFEST,
    SEGMENT_RE,
    WAL_TAR,
    BaseBackupInfo,
    format_lsn,
    log,
    parse_lsn,
    read_base_backup,
    segment_name,
    segment_of,
    segment_size_in,
    tool_env,
)

# A Unix socket path (DIR/.s.PGSQL.PORT) must fit in sun_path (108 bytes with the NUL).
_MAX_SOCKET_PATH = 107


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
            if not SEGMENT_RE.fullmatch(stem) or not path.is_file():
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
        if SEGMENT_RE.fullmatch(path.name):
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

        size = segment_size_in(data_dir / "pg_wal")
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
