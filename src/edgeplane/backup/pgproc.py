"""Running PostgreSQL's programs: finding them, and running the server's side as its user.

``initdb``, ``pg_ctl`` and ``postgres`` refuse to run as root. When the control plane runs as
root, the programs that own a data directory (``pg_ctl``, ``tar`` into a data directory) run as
the ``postgres`` user (created by the Debian package) through ``runuser -u postgres --``, and
the files they need are handed to that user. Client programs (``pg_basebackup``,
``pg_receivewal``, ``pg_verifybackup``, ``pg_waldump``) run as the current user. Not as root,
everything runs as the current user.
"""

from __future__ import annotations

import logging
import os
import pwd
import re
import shutil
import stat
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import IO

from edgeplane.backup.errors import BackupError

log = logging.getLogger("edgeplane.backup")

PG_LIB_DIR = Path("/usr/lib/postgresql")
SERVICE_USER = "postgres"


def installed_majors() -> list[int]:
    """The PostgreSQL major versions installed under /usr/lib/postgresql, newest first."""
    if not PG_LIB_DIR.is_dir():
        return []
    majors = [int(p.name) for p in PG_LIB_DIR.iterdir() if re.fullmatch(r"\d+", p.name)]
    return sorted(majors, reverse=True)


def pg_bin(tool: str, major: int | None = None) -> str:
    """The path of a PostgreSQL program (``pg_basebackup``, ``pg_ctl``, ``pg_waldump``...).

    Looked up in ``/usr/lib/postgresql/<major>/bin`` (the newest major that has it, or exactly
    ``major`` when given: the server and ``pg_waldump`` must match the data's version), then
    on PATH (only when no major is asked for).
    """
    if not re.fullmatch(r"[a-z_]+", tool):
        raise BackupError(f"not a PostgreSQL program name: {tool!r}")
    for m in [major] if major is not None else installed_majors():
        path = PG_LIB_DIR / str(m) / "bin" / tool
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    if major is None:
        found = shutil.which(tool)
        if found:
            return found
        raise BackupError(f"the PostgreSQL program {tool} is not installed (package `postgresql`)")
    raise BackupError(
        f"the PostgreSQL program {tool} of version {major} is not installed"
        f" (package `postgresql-{major}`)"
    )


def as_root() -> bool:
    return os.geteuid() == 0


def service_ids() -> tuple[int, int] | None:
    """uid and gid of the ``postgres`` user when running as root, else None (run as self)."""
    if not as_root():
        return None
    try:
        entry = pwd.getpwnam(SERVICE_USER)
    except KeyError:
        raise BackupError(
            f"running as root but there is no {SERVICE_USER!r} user to run PostgreSQL"
            " (install the `postgresql` package)"
        ) from None
    return entry.pw_uid, entry.pw_gid


def service_argv(argv: list[str]) -> list[str]:
    """``argv`` run as the server's user: through runuser when root."""
    if service_ids() is None:
        return argv
    return ["runuser", "-u", SERVICE_USER, "--", *argv]


def give_to_service_user(path: Path) -> None:
    """As root: ``path`` and everything below it belong to ``postgres``."""
    ids = service_ids()
    if ids is None:
        return
    uid, gid = ids
    os.chown(path, uid, gid, follow_symlinks=False)
    if path.is_dir() and not path.is_symlink():
        for root, dirs, files in os.walk(path):
            for name in dirs + files:
                os.chown(os.path.join(root, name), uid, gid, follow_symlinks=False)


def make_reachable(path: Path) -> None:
    """As root: let ``postgres`` traverse every ancestor of ``path``.

    An ancestor it cannot traverse (a 0700 directory of root's, as temporary folders are)
    gets the search bit for others; never the read bit, so listings stay private.
    """
    ids = service_ids()
    if ids is None:
        return
    for parent in path.absolute().parents:
        st = parent.stat()
        if st.st_uid == ids[0] or st.st_mode & stat.S_IXOTH:
            continue
        os.chmod(parent, stat.S_IMODE(st.st_mode) | stat.S_IXOTH)
        log.info("let %s traverse %s (search bit for others)", SERVICE_USER, parent)


def run(
    argv: list[str],
    *,
    env: Mapping[str, str] | None = None,
    stdin: IO[bytes] | None = None,
    as_service: bool = False,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a program to its end; its output (stdout and stderr) as text. Never raises for a
    non-zero exit: the caller decides what a failure means."""
    if as_service:
        argv = service_argv(argv)
    try:
        return subprocess.run(
            argv,
            env=dict(env) if env is not None else None,
            stdin=stdin if stdin is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise BackupError(f"{Path(argv[0]).name} did not finish within {timeout:.0f} s") from None
    except FileNotFoundError:
        raise BackupError(f"{argv[0]} is not installed") from None
