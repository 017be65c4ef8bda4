"""The nginx master: start it as a child (own session, ending with the agent), adopt a live
one, signal and stop it."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path

from edgeplane.node.lifeline import spawn
from edgeplane.node.procfs import cmdline


class NginxError(Exception):
    """nginx refused a config or failed to start; the message is nginx's own."""


_LEVEL = re.compile(r"^.*?\[(emerg|alert|crit)\] (?:\d+#\d+: )?")


def nginx_message(output: str) -> str:
    """The line that explains a failure: the last ``[emerg]`` (or ``[alert]``) line."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for level in ("[emerg]", "[alert]", "[crit]"):
        hits = [line for line in lines if level in line]
        if hits:
            return _LEVEL.sub(lambda m: f"[{m.group(1)}] ", hits[-1])
    return lines[-1] if lines else "nginx failed without a message"


def probe(sock: Path, timeout: float = 0.5) -> str | None:
    """The release marker served on the internal status socket, or None."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(str(sock))
            s.sendall(b"GET / HTTP/1.0\r\nHost: status\r\n\r\n")
            data = b""
            while chunk := s.recv(4096):
                data += chunk
    except OSError:
        return None
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        return None
    return body.decode().strip() or None


class NginxProcess:
    def __init__(self, prefix: Path, binary: str = "nginx") -> None:
        self.prefix = prefix
        self.binary = binary
        self.conf = prefix / "current" / "nginx.conf"
        self.pid_file = prefix / "nginx.pid"
        self.output = prefix / "logs" / "nginx.out"
        self._child: subprocess.Popen[bytes] | None = None
        self._pid: int | None = None

    @property
    def pid(self) -> int | None:
        return self._pid if self.alive() else None

    def alive(self) -> bool:
        if self._pid is None:
            return False
        if self._child is not None:
            return self._child.poll() is None
        return self._is_ours(cmdline(self._pid))  # adopted: not our child, nothing to reap

    def _is_ours(self, cmd: list[str]) -> bool:
        text = " ".join(cmd)
        return "nginx" in text and str(self.prefix) in text

    def adopt(self) -> bool:
        """Take over a live master of this prefix left by a previous agent."""
        if self.alive():
            return True
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return False
        if not self._is_ours(cmdline(pid)):
            return False
        self._child, self._pid = None, pid
        return True

    def start(self, timeout: float = 10.0) -> None:
        """Start the master from ``current``; returns once it wrote its pid."""
        # left by a master that died: the status socket and the origin hops' (render_hop)
        for sock in [self.prefix / "status.sock", *self.prefix.glob("*.hop")]:
            with contextlib.suppress(FileNotFoundError):
                sock.unlink()
        with contextlib.suppress(FileNotFoundError):
            self.pid_file.unlink()
        with self.output.open("ab") as out:
            # Ends with the agent (SIGQUIT: a graceful stop) however the agent ends; its
            # working directory is the prefix, which marks it and its workers as this node's.
            child = spawn(
                [self.binary, "-p", f"{self.prefix}/", "-c", str(self.conf)],
                death_signal=signal.SIGQUIT,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=self.prefix,
            )
        self._child, self._pid = child, child.pid
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if child.poll() is not None:
                raise NginxError(nginx_message(self._tail()))
            with contextlib.suppress(OSError, ValueError):
                if int(self.pid_file.read_text().strip()) == child.pid:
                    return
            time.sleep(0.01)
        self.stop()
        raise NginxError("nginx did not start within the deadline")

    def _tail(self) -> str:
        try:
            data = self.output.read_bytes()[-8192:]
        except OSError:
            return ""
        return data.decode("utf-8", "replace")

    def signal(self, sig: int) -> None:
        if self._pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._pid, sig)

    def stop(self, graceful: float = 5.0, fast: float = 2.0) -> None:
        """Graceful stop (QUIT); after ``graceful`` seconds a fast one (TERM), which closes
        the connections still open; after ``fast`` more, KILL."""
        if self._pid is None:
            return
        for sig, wait in ((signal.SIGQUIT, graceful), (signal.SIGTERM, fast)):
            self.signal(sig)
            deadline = time.monotonic() + wait
            while self.alive() and time.monotonic() < deadline:
                time.sleep(0.02)
            if not self.alive():
                break
        if self.alive():
            self.signal(signal.SIGKILL)
        if self._child is not None:
            self._child.wait()
        self._child, self._pid = None, None


def check(binary: str, prefix: Path, conf: Path) -> str | None:
    """``nginx -t`` of a staged release; None when it passes, else nginx's message."""
    run = subprocess.run(
        [binary, "-t", "-q", "-p", f"{prefix}/", "-c", str(conf)],
        capture_output=True,
        text=True,
        check=False,
    )
    return None if run.returncode == 0 else nginx_message(run.stderr + run.stdout)
