"""PostgreSQL's WAL streamed into a directory by ``pg_receivewal`` through a replication slot
(the archive an incremental backup takes its WAL from), and ``switch_wal`` that closes the
current segment for one (``edgeplane.backup.postgres`` tells the whole story)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from edgeplane.backup.errors import BackupError
from edgeplane.backup.pgproc import pg_bin
from edgeplane.backup.postgres import (
    HISTORY_RE,
    SEGMENT_RE,
    SLOT,
    connect,
    conninfo,
    format_lsn,
    log,
    parse_lsn,
    scrub,
    scrubber,
    segment_of,
    segment_size_in,
    tool_env,
)

_SLOT_RE = re.compile(r"[a-z0-9_]{1,63}")
_STREAM_ERRORS = 20  # the archiver's last stderr lines kept for status and errors
# pg_receivewal's lines that follow the one telling why it stopped
_TRIVIAL = ("error: disconnected", "segment is not complete")


# -- WAL archiving ----------------------------------------------------------------------------


def switch_wal(database_url: str) -> str:
    """Close the current WAL segment so that the archiver completes it; the LSN returned is
    where the next segment starts (everything before it is in complete segments).

    A transaction is committed first (``pg_current_xact_id()``): its commit record carries the
    current time, so a restore can reach any time up to this call.
    """
    with connect(database_url) as conn:
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
                f"pg_switch_wal() failed: {scrub(str(exc), scrubber(database_url))}"
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
        self._secrets = scrubber(database_url)
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
        with connect(self.database_url) as conn:
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
        size = segment_size_in(self.wal_dir)
        since = parse_lsn(since_lsn) if since_lsn is not None else 0
        found: list[tuple[int, int, Path]] = []
        for path in self.wal_dir.iterdir():
            name = path.name
            if HISTORY_RE.fullmatch(name):
                found.append((-1, int(name[:8], 16), path))
                continue
            partial = name.endswith(".partial")
            if partial and not include_partial:
                continue
            stem = name.removesuffix(".partial")
            if not SEGMENT_RE.fullmatch(stem):
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
            size = segment_size_in(self.wal_dir)
            needed = (target - 1) // size
            if any(
                SEGMENT_RE.fullmatch(p.name) and segment_of(p.name, size)[1] >= needed
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
        size = segment_size_in(self.wal_dir)
        count = 0
        for path in list(self.wal_dir.iterdir()) if self.wal_dir.is_dir() else []:
            if (
                SEGMENT_RE.fullmatch(path.name)
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
        with connect(self.database_url) as conn:
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
                    f"{scrub(str(exc), self._secrets)} (the role needs REPLICATION)"
                ) from None

    def _note(self, line: str, *, keep: bool = True) -> None:
        """Log a line of pg_receivewal's (kept for :meth:`status` when ``keep``)."""
        line = scrub(line, self._secrets)
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
