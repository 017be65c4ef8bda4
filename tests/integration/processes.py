"""Starting the real ``edgeplane`` processes for tests, and waiting for them."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

# Ports for the servers a test starts: below the ephemeral range (32768-60999 here), where the
# kernel picks the ports of outgoing connections and of bind(0), and split among pytest-xdist's
# workers, so that a port one worker was given is never handed to the other before it is bound.
PORTS = range(20000, 32000)
_given: set[int] = set()


def _ports() -> range:
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
    size = len(PORTS) // max(workers, 1)
    start = PORTS.start + size * (worker % max(workers, 1))
    return range(start, start + size)


def _free(address: str, *kinds: socket.SocketKind) -> int:
    """A port of this worker's share, free on ``address`` for every kind, not given before by
    this process (a port handed out may not be bound yet)."""
    ports = _ports()
    for _ in range(500):
        port = random.choice(ports)
        if port in _given:
            continue
        try:
            for kind in kinds:
                with socket.socket(socket.AF_INET, kind) as s:
                    s.bind((address, port))
        except OSError:
            continue
        _given.add(port)
        return port
    raise RuntimeError(f"no free port in {ports}")


def free_port() -> int:
    return _free("127.0.0.1", socket.SOCK_STREAM)


def free_udp_port(address: str = "127.0.0.1") -> int:
    """A port free for both UDP and TCP on ``address`` (a DNS server needs both)."""
    return _free(address, socket.SOCK_DGRAM, socket.SOCK_STREAM)


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any EDGEPLANE_ setting of the caller's, plus ``extra``. Scheduled
    backups are off unless asked for: their own tests turn them on (and shorten their periods);
    elsewhere their background work would only load the machine the suite runs on."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGEPLANE_")}
    env["EDGEPLANE_BACKUP_SCHEDULE"] = "off"
    env.update(extra)
    return env


@dataclass
class ControlPlane:
    process: subprocess.Popen[str]
    home: Path
    url: str
    log: Path
    http_port: int | None = None  # the local edge node's ports (start_up(edge=True))
    https_port: int | None = None
    dns_port: int | None = None

    @property
    def token(self) -> str:
        return (self.home / "admin-token").read_text().strip()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise
        return self.process.returncode

    def output(self) -> str:
        return self.log.read_text()


def start_up(
    home: Path,
    *args: str,
    env: dict[str, str] | None = None,
    edge: bool = False,
    host: str = "127.0.0.1",
    api_port: int | None = None,
    edge_ports: tuple[int, int, int] | None = None,
) -> ControlPlane:
    """``edgeplane up --home HOME --api-port P --host HOST``, waiting until /healthz answers;
    with ``edge`` also the local edge node on free ports (or ``edge_ports``: HTTP, HTTPS, DNS),
    else ``--no-edge``. ``host``: the address it listens on (e.g. a network namespace's
    gateway), also the one in ``url``."""
    port = api_port or free_port()
    if edge and edge_ports is None:
        edge_ports = (free_port(), free_port(), free_udp_port())
    elif not edge:
        edge_ports = None
    if edge_ports:
        args = (
            *args,
            "--http-port",
            str(edge_ports[0]),
            "--https-port",
            str(edge_ports[1]),
            "--dns-port",
            str(edge_ports[2]),
            "--metrics-port",
            str(free_port()),
        )
    else:
        args = (*args, "--no-edge")
    log = home.parent / f"{home.name}-up.log"
    home.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "edgeplane",
                "up",
                "--home",
                str(home),
                "--api-port",
                str(port),
                "--host",
                host,
                *args,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            env=env or clean_env(),
        )
    cp = ControlPlane(
        process, home, f"http://{host}:{port}", log, *(edge_ports or (None, None, None))
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"edgeplane up exited early:\n{cp.output()}")
        try:
            if httpx.get(f"{cp.url}/healthz", timeout=1).status_code == 200:
                return cp
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    cp.stop(signal.SIGKILL)
    raise RuntimeError(f"edgeplane up did not answer within 60 s:\n{cp.output()}")
