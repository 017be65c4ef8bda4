"""Instructions per request of an nginx configuration, counted by valgrind's callgrind.

A count of the instructions nginx executes in user space for one request, which (unlike
requests per second) is the same whatever else the machine is doing: the same binary, the
same configuration and the same requests give the same count to within a few instructions.
Kernel work (the socket reads and writes) is not counted; it is about the same for every
configuration that serves the same response.

The method: nginx runs as a single process (``master_process off``) under
``valgrind --tool=callgrind``; a client warms the cache, ``callgrind_control --zero`` clears the
counters, ``n`` keep-alive requests are sent, ``callgrind_control --dump`` writes the counts of
exactly those requests. ``release_copy`` makes a copy of an edge node's current configuration
that can run beside the node (its own ports, pid, logs and cache; the node's certificates,
ticket keys and bundles).
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

PRIVATE = {"releases", "cache", "tmp", "logs"}  # made afresh in a copy; the rest is linked
_LISTEN = re.compile(r"listen (127\.0\.0\.1|\[::1\]|0\.0\.0\.0):(\d+)")


def available() -> bool:
    return bool(shutil.which("valgrind") and shutil.which("callgrind_control"))


def release_copy(
    release: Path,
    node_prefix: Path,
    into: Path,
    ports: dict[int, int],
    edits: Sequence[tuple[str, str, str]] = (),
) -> Path:
    """A copy of a node's release directory under the prefix ``into``: the node's prefix
    replaced by ``into`` in every file, each port of ``ports`` replaced by its value, and each
    edit ``(file, regex, replacement)`` made (a part switched off, to measure what it costs).
    Returns the copy's main configuration file."""
    into.mkdir(parents=True, exist_ok=True)
    for entry in node_prefix.iterdir():
        if entry.name in PRIVATE or entry.suffix == ".pid" or entry.is_socket():
            continue  # the copy binds sockets of its own (status, origin hops)
        link = into / entry.name
        if not link.exists():
            link.symlink_to(entry)
    for name in ("cache", "tmp", "logs"):
        (into / name).mkdir(exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(into / name, "www-data")
    copy = into / "releases" / release.name
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(release, copy, symlinks=True)

    def port(match: re.Match[str]) -> str:
        number = int(match.group(2))
        return f"listen {match.group(1)}:{ports.get(number, number)}"

    for path in copy.iterdir():
        if path.is_file() and not path.is_symlink():
            text = path.read_text().replace(str(node_prefix), str(into))
            path.write_text(_LISTEN.sub(port, text))
    for name, pattern, replacement in edits:
        path = copy / name
        text, n = re.subn(pattern, replacement, path.read_text())
        if not n:
            raise RuntimeError(f"{name}: nothing matches {pattern!r}")
        path.write_text(text)
    return copy / "nginx.conf"


def _requests(
    conn: http.client.HTTPConnection,
    host: str,
    path: str,
    n: int,
    headers: dict[str, str] | None = None,
) -> int:
    status = 0
    for _ in range(n):
        conn.request("GET", path, headers={"Host": host, **(headers or {})})
        response = conn.getresponse()
        response.read()
        status = response.status
    return status


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stops nginx under valgrind and what it started (gone already when it could not start)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def count(
    conf: Path,
    prefix: Path,
    port: int,
    host: str,
    path: str,
    *,
    requests: int = 2000,
    warm: int = 50,
    daemon_off: bool = False,
    out: Path,
    timeout: float = 120.0,
    headers: dict[str, str] | None = None,
) -> float:
    """Instructions per request of ``requests`` keep-alive GETs of ``host`` ``path`` on
    ``port`` (with ``headers`` besides Host), served by the nginx configuration ``conf`` (run
    under callgrind). Raises when the responses are not 200."""
    extra = "master_process off;" + (" daemon off;" if daemon_off else "")
    out.parent.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
         "nginx", "-p", f"{prefix}/", "-c", str(conf), "-g", extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                status = _requests(conn, host, path, warm, headers)
                break
            except OSError as error:
                if process.poll() is not None or time.monotonic() > deadline:
                    err = process.stderr.read().decode(errors="replace") if process.stderr else ""
                    raise RuntimeError(
                        f"nginx under valgrind did not serve: {err[-2000:]}"
                    ) from error
                time.sleep(0.2)
        if status != 200:
            raise RuntimeError(f"{host}{path}: status {status} while warming")
        subprocess.run(["callgrind_control", "--zero", str(process.pid)],
                       check=True, capture_output=True)  # fmt: skip
        status = _requests(conn, host, path, requests, headers)
        subprocess.run(["callgrind_control", "--dump", str(process.pid)],
                       check=True, capture_output=True)  # fmt: skip
        conn.close()
        if status != 200:
            raise RuntimeError(f"{host}{path}: status {status}")
    finally:
        _stop(process)
    dumps = sorted(out.parent.glob(f"{out.name}.*"), key=os.path.getmtime)
    if not dumps:
        raise RuntimeError("callgrind wrote no dump")
    for line in dumps[-1].read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1]) / requests
    raise RuntimeError(f"no totals in {dumps[-1]}")
