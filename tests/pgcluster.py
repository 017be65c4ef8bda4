"""A throwaway PostgreSQL cluster for tests.

Each cluster lives in a directory of its own (data directory, log, Unix socket), listens on a
free port of 127.0.0.1 only, and is tuned for speed over durability. As root, the server runs as
the ``postgres`` user (``initdb`` refuses root) through ``runuser``; otherwise it runs as the
current user.

Typical use::

    cluster = PostgresCluster(tmp_path / "pg")
    cluster.start()
    try:
        url = cluster.create_database("app")   # SQLAlchemy URL
        ...
    finally:
        cluster.stop()
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import pwd
import re
import signal
import socket
import stat
import subprocess
import time
import urllib.parse
from types import TracebackType

import psycopg
from psycopg import sql

PG_LIB_DIR = pathlib.Path("/usr/lib/postgresql")
SERVICE_USER = "postgres"
# A Unix socket path (DIR/.s.PGSQL.PORT) must fit in sun_path (108 bytes with the NUL).
_MAX_SOCKET_PATH = 107
_START_ATTEMPTS = 5

_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "max_connections": "200",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "log_min_messages": "warning",
}


def find_pg_bin() -> pathlib.Path | None:
    """The bin directory of the highest PostgreSQL version installed that has ``initdb``."""
    if not PG_LIB_DIR.is_dir():
        return None
    candidates: list[tuple[tuple[int, ...], pathlib.Path]] = []
    for entry in PG_LIB_DIR.iterdir():
        if not re.fullmatch(r"\d+(\.\d+)*", entry.name):
            continue
        bin_dir = entry / "bin"
        if (bin_dir / "initdb").is_file():
            candidates.append((tuple(int(p) for p in entry.name.split(".")), bin_dir))
    if not candidates:
        return None
    return max(candidates)[1]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class PostgresError(RuntimeError):
    pass


class PostgresCluster:
    def __init__(self, base_dir: pathlib.Path) -> None:
        self.base_dir = pathlib.Path(base_dir).absolute()
        self.data_dir = self.base_dir / "data"
        self.log_file = self.base_dir / "postgres.log"
        self.port: int | None = None
        self._bin: pathlib.Path | None = None
        self._as_root = os.geteuid() == 0

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """``initdb`` (unless already done in base_dir) and start the server on a free port."""
        if self.port is not None:
            return
        bin_dir = find_pg_bin()
        if bin_dir is None:
            raise PostgresError(f"no PostgreSQL found under {PG_LIB_DIR} (install `postgresql`)")
        self._bin = bin_dir
        self.base_dir.mkdir(parents=True, exist_ok=True)
        if self._as_root:
            self._prepare_for_service_user()
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()

        last_error = ""
        for _ in range(_START_ATTEMPTS):
            port = _free_port()
            result = self._run(
                [
                    str(bin_dir / "pg_ctl"),
                    "-D",
                    str(self.data_dir),
                    "-l",
                    str(self.log_file),
                    "-o",
                    f"-p {port}",
                    "-w",
                    "-t",
                    "60",
                    "start",
                ],
                check=False,
            )
            if result.returncode == 0:
                self.port = port
                return
            last_error = result.stdout + self._log_tail()
            # Another process may have taken the port between our probe and the bind: retry.
            if "could not bind" not in last_error and "in use" not in last_error:
                break
        raise PostgresError(f"PostgreSQL did not start in {self.base_dir}:\n{last_error}")

    def stop(self, mode: str = "fast") -> None:
        """Shut down (``pg_ctl -m``: ``fast`` rolls back the sessions and checkpoints,
        ``immediate`` ends every process at once with no checkpoint, as a crash would).
        Does nothing if the server is not running."""
        if mode not in ("fast", "immediate"):
            raise ValueError(f"shutdown mode must be fast or immediate, not {mode!r}")
        if self._bin is None:
            bin_dir = find_pg_bin()
            if bin_dir is None:
                return
            self._bin = bin_dir
        pid = self._postmaster_pid()
        if pid is not None:
            result = self._run(
                [
                    str(self._bin / "pg_ctl"),
                    "-D",
                    str(self.data_dir),
                    "-m",
                    mode,
                    "-w",
                    "-t",
                    "60",
                    "stop",
                ],
                check=False,
            )
            if result.returncode != 0 and self._postmaster_pid() is not None:
                # Last resort: immediate shutdown by PID.
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGQUIT)
                deadline = time.monotonic() + 30
                while self._pid_alive(pid) and time.monotonic() < deadline:
                    time.sleep(0.05)
        self.port = None

    def restart(self) -> None:
        """Fast shutdown and start again on the same port (``pg_ctl restart`` reuses the
        options of the last start): clients see their connections drop, as in production."""
        port = self._require_port()
        assert self._bin is not None
        self._run(
            [
                str(self._bin / "pg_ctl"),
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log_file),
                "-m",
                "fast",
                "-w",
                "-t",
                "60",
                "restart",
            ]
        )
        self.port = port

    def __enter__(self) -> PostgresCluster:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- URLs and databases ----------------------------------------------------------------

    @property
    def admin_url(self) -> str:
        return self.url("postgres")

    def url(self, dbname: str) -> str:
        """SQLAlchemy URL (psycopg 3 driver) of a database of this cluster."""
        return (
            f"postgresql+psycopg://{SERVICE_USER}@127.0.0.1:{self._require_port()}/"
            f"{urllib.parse.quote(dbname, safe='')}"
        )

    def conninfo(self, dbname: str = "postgres") -> str:
        """libpq connection string, for ``psycopg.connect``."""
        return psycopg.conninfo.make_conninfo(
            host="127.0.0.1", port=self._require_port(), user=SERVICE_USER, dbname=dbname
        )

    def create_database(self, name: str, template: str | None = None) -> str:
        """Create a database (optionally as a copy of ``template``); return its SQLAlchemy URL.

        PostgreSQL refuses to copy a template that has open connections: close (or dispose
        the engine of) every connection to the template first.
        """
        query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template is not None:
            query = sql.SQL("{} TEMPLATE {}").format(query, sql.Identifier(template))
        with psycopg.connect(self.conninfo(), autocommit=True) as conn:
            conn.execute(query)
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop a database if it exists, terminating its connections first."""
        with psycopg.connect(self.conninfo(), autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            # FORCE also ends connections that arrived after the statement above.
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    # -- internals -------------------------------------------------------------------------

    def _require_port(self) -> int:
        if self.port is None:
            raise PostgresError("the cluster is not running: call start() first")
        return self.port

    def _socket_dir(self) -> str:
        # Too long a path would make the server fail to start: then TCP only.
        if len(str(self.base_dir)) + len("/.s.PGSQL.65535") > _MAX_SOCKET_PATH:
            return ""
        return str(self.base_dir)

    def _initdb(self) -> None:
        assert self._bin is not None
        self._run(
            [
                str(self._bin / "initdb"),
                "-D",
                str(self.data_dir),
                "-A",
                "trust",
                "-U",
                SERVICE_USER,
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            ]
        )
        settings = dict(_SETTINGS, unix_socket_directories=_quote(self._socket_dir()))
        lines = "".join(f"{key} = {value}\n" for key, value in settings.items())
        # postgresql.conf belongs to the service user; append through it.
        self._run(
            ["sh", "-c", 'cat >> "$1"', "sh", str(self.data_dir / "postgresql.conf")],
            input=f"\n# edgeplane test settings\n{lines}",
        )

    def _prepare_for_service_user(self) -> None:
        """As root: hand base_dir to ``postgres`` and let it reach base_dir.

        pytest's temporary directories are mode 0700 and owned by root, so ancestors that
        ``postgres`` cannot traverse get the search bit for others (not read: their listing
        stays private).
        """
        try:
            entry = pwd.getpwnam(SERVICE_USER)
        except KeyError:
            raise PostgresError(
                f"running as root but there is no {SERVICE_USER!r} user (install `postgresql`)"
            ) from None
        for path, _dirs, files in os.walk(self.base_dir):
            os.chown(path, entry.pw_uid, entry.pw_gid)
            for f in files:
                os.chown(os.path.join(path, f), entry.pw_uid, entry.pw_gid)
        for parent in self.base_dir.parents:
            st = parent.stat()
            if st.st_uid == entry.pw_uid:
                continue
            if not st.st_mode & stat.S_IXOTH:
                os.chmod(parent, stat.S_IMODE(st.st_mode) | stat.S_IXOTH)

    def _run(
        self, argv: list[str], *, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        if self._as_root:
            argv = ["runuser", "-u", SERVICE_USER, "--", *argv]
        result = subprocess.run(
            argv,
            cwd=self.base_dir,
            input=input,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            # Never wait on a terminal: no input unless some is given.
            stdin=None if input is not None else subprocess.DEVNULL,
        )
        if check and result.returncode != 0:
            raise PostgresError(f"{' '.join(argv)} failed ({result.returncode}):\n{result.stdout}")
        return result

    def _postmaster_pid(self) -> int | None:
        try:
            first = (self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0]
        except (FileNotFoundError, PermissionError):
            return None
        try:
            pid = int(first)
        except ValueError:
            return None
        return pid if self._pid_alive(pid) else None

    @staticmethod
    def _pid_alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def _log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return ""
        return "\n--- postgres.log ---\n" + "\n".join(text.splitlines()[-lines:])
