"""A real OpenSSH server (``/usr/sbin/sshd``, Debian ``openssh-server``) on a host of its own:
a network namespace from ``netns.hosts(1)``, for tests of the off-site backup target (SFTP).

``with sshd_server() as ssh:`` (or the module-scoped ``sshd_host`` fixture) makes a temporary
folder holding a fresh host key and a client ed25519 key (``ssh-keygen``), an ``authorized_keys``
with the client's public key, a ``known_hosts`` line for ``[address]:port`` and an
``sshd_config`` of its own (key authentication only, root allowed with a key since the tests
run as root, ``internal-sftp``, its pid file and log in the folder), then starts
``sshd -D -e -f CONFIG`` inside the namespace, listening on the host's address alone, and waits
until the port accepts. The root namespace reaches ``ssh.address``; the namespace shares the
filesystem, so what a client uploads lands under ``ssh.root`` where the test can read it or
flip a byte in it. ``stop()`` kills the server and its per-connection processes (the host is
then unreachable: connections are refused), ``start()`` starts it again with the same keys,
``drop_connections()`` kills the per-connection processes alone (a dropped connection).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest
from netns import Host, hosts

SSHD = "/usr/sbin/sshd"
PRIVSEP_DIR = Path("/run/sshd")  # sshd refuses to start without it
PORT = 2222  # every port is free inside the namespace
READONLY_PORT = 2223  # the same server, its SFTP read-only (writes: permission denied)
START_TIMEOUT = 10.0


def _keygen(path: Path, comment: str) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        capture_output=True,
        timeout=30,
    )


@dataclass
class SshServer:
    host: Host  # the namespace host sshd runs in
    dir: Path  # keys, config, log, pid file
    port: int = PORT
    readonly_port: int = READONLY_PORT
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        return self.host.address

    @property
    def identity(self) -> Path:
        """The client's private key (ed25519, no passphrase), authorized for root."""
        return self.dir / "client_ed25519"

    @property
    def known_hosts(self) -> Path:
        """A known_hosts file holding the server's host key for ``[address]:port``."""
        return self.dir / "known_hosts"

    @property
    def root(self) -> Path:
        """Where uploads land (a folder of the shared filesystem; paths under it are the same
        for the server and the test)."""
        return self.dir / "data"

    @property
    def config(self) -> Path:
        return self.dir / "sshd_config"

    @property
    def log(self) -> Path:
        return self.dir / "sshd.log"

    @property
    def host_key(self) -> Path:
        return self.dir / "host_ed25519"

    def url(
        self,
        path: str | Path = "backups",
        name: str = "offsite",
        kinds: str | None = None,
        *,
        readonly: bool = False,
        **extra: str,
    ) -> str:
        """The ``sftp://`` URL of ``path`` (relative: under ``root``) as root with the client
        key and this server's known_hosts; ``readonly``: through the port whose SFTP refuses
        every write; ``extra`` adds or replaces query parameters (``timeout``...)."""
        remote = Path(path) if Path(path).is_absolute() else self.root / path
        query = {"identity": str(self.identity), "known_hosts": str(self.known_hosts), "name": name}
        if kinds is not None:
            query["kinds"] = kinds
        query.update(extra)
        port = self.readonly_port if readonly else self.port
        return f"sftp://root@{self.address}:{port}{quote(str(remote))}?{urlencode(query)}"

    # ------------------------------------------------------------------ set up, start, stop

    def prepare(self) -> None:
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        _keygen(self.host_key, "edgeplane-test-host")
        _keygen(self.identity, "edgeplane-test-client")
        (self.dir / "authorized_keys").write_text(self.identity.with_suffix(".pub").read_text())
        host_pub = " ".join(self.host_key.with_suffix(".pub").read_text().split()[:2])
        self.known_hosts.write_text(
            "".join(f"[{self.address}]:{p} {host_pub}\n" for p in (self.port, self.readonly_port))
        )
        self.config.write_text(
            "\n".join(
                [
                    f"Port {self.port}",
                    f"Port {self.readonly_port}",
                    f"ListenAddress {self.address}",
                    f"HostKey {self.host_key}",
                    f"AuthorizedKeysFile {self.dir / 'authorized_keys'}",
                    f"PidFile {self.dir / 'sshd.pid'}",
                    "PubkeyAuthentication yes",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "PermitRootLogin prohibit-password",
                    "StrictModes no",
                    "UsePAM no",
                    "UseDNS no",
                    "PrintMotd no",
                    "X11Forwarding no",
                    "AllowTcpForwarding no",
                    "LoginGraceTime 20",
                    "Subsystem sftp internal-sftp",
                    f"Match LocalPort {self.readonly_port}",
                    "    ForceCommand internal-sftp -R",
                    "",
                ]
            )
        )
        PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
        check = subprocess.run(
            [SSHD, "-t", "-f", str(self.config)], capture_output=True, text=True, timeout=30
        )
        if check.returncode != 0:
            raise RuntimeError(f"sshd -t rejected its config: {check.stderr.strip()}")

    def start(self) -> None:
        """Start sshd in the namespace and wait until its port accepts connections."""
        if self.proc is not None and self.proc.poll() is None:
            return
        with self.log.open("ab") as log:
            self.proc = self.host.popen(
                SSHD,
                "-D",
                "-e",
                "-f",
                str(self.config),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"sshd exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}"
                )
            with (
                contextlib.suppress(OSError),
                socket.create_connection((self.address, self.port), timeout=0.5),
            ):
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(
            f"sshd did not accept on {self.address}:{self.port} within "
            f"{START_TIMEOUT} s: {self.log.read_text()[-2000:]}"
        )

    def drop_connections(self) -> None:
        """Kill sshd's per-connection processes: clients see their connection dropped while the
        server keeps listening."""
        master = self.proc.pid if self.proc is not None else None
        for pid in self.host.pids():
            if pid != master:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def stop(self) -> None:
        """Kill sshd and every connection it serves: the host no longer answers on the port."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            self.proc.wait(timeout=10)
        for pid in self.host.pids():  # only this server runs in the namespace
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while self.host.pids() and time.monotonic() < deadline:
            time.sleep(0.02)


@contextlib.contextmanager
def sshd_server() -> Iterator[SshServer]:
    """A running sshd in a namespace of its own (skips the test where sshd or namespaces are
    not available); everything is stopped and removed on the way out."""
    if not Path(SSHD).exists() or shutil.which("ssh-keygen") is None:
        pytest.skip("OpenSSH (openssh-server) is not installed")
    with hosts(1) as (host,):
        server = SshServer(host=host, dir=Path(tempfile.mkdtemp(prefix="edgeplane-sshd-")))
        try:
            server.prepare()
            server.start()
            yield server
        finally:
            server.stop()
            shutil.rmtree(server.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def sshd_host() -> Iterator[SshServer]:
    """A real OpenSSH server in a network namespace, shared by the module's tests (a test that
    stops it starts it again)."""
    with sshd_server() as server:
        yield server
