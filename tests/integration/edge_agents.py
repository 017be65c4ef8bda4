"""Real edge agents (``edgeplane edge``) as processes for tests, and the API calls around them."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
from processes import ControlPlane, clean_env, free_port

T = TypeVar("T")


def wait_for(fn: Callable[[], T | None], timeout: float, what: str, every: float = 0.05) -> T:
    """Poll ``fn`` until it returns something truthy; AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            value = fn()
        except (httpx.TransportError, AssertionError) as exc:
            last = exc
        else:
            if value:
                return value
            last = value
        time.sleep(every)
    raise AssertionError(f"{what}: not within {timeout} s (last: {last!r})")


class Api:
    """The REST API as an admin, in one project."""

    def __init__(self, cp: ControlPlane, project: str = "default") -> None:
        self.cp = cp
        self.project = project
        self.http = httpx.Client(
            base_url=cp.url,
            headers={"Authorization": f"Bearer {cp.token}", "X-Edgeplane-Project": project},
            timeout=30,
        )

    def close(self) -> None:
        self.http.close()

    def ok(self, method: str, path: str, **kw: Any) -> Any:
        r = self.http.request(method, path, **kw)
        assert r.status_code < 300, f"{method} {path}: {r.status_code} {r.text}"
        return r.json() if r.content else None

    def in_project(self, project: str) -> Api:
        if project != "default":
            r = self.http.post("/api/v1/projects", json={"id": project})
            assert r.status_code in (201, 409), r.text
        return Api(self.cp, project)

    def edge_token(self, name: str) -> str:
        doc = self.ok("POST", "/api/v1/tokens", json={"name": name, "scope": "edge"})
        return str(doc["token"])

    def nodes(self) -> list[dict[str, Any]]:
        return list(self.ok("GET", "/api/v1/edge/nodes"))


@dataclass
class EdgeAgent:
    name: str
    home: Path
    http_port: int
    control_plane: str
    token: str
    log: Path
    process: subprocess.Popen[bytes] | None = None
    analytics_interval: float = 2.0
    region: str = "us-east"
    https_port: int = 0  # 0: no HTTPS
    dns_port: int = 0  # 0: no DNS server
    bind: str = "127.0.0.1"
    address: str | None = None
    netns: str | None = None  # run inside this network namespace
    env: dict[str, str] | None = None
    extra_args: list[str] = field(default_factory=list)
    metrics_port: int = field(default_factory=free_port)  # 0: none

    @property
    def metrics_token(self) -> str:
        """The node's own metrics token (made in its state directory at start)."""
        return (self.home / "edge" / self.name / "metrics-token").read_text().strip()

    def scrape(self, token: str | None = None) -> httpx.Response:
        return httpx.get(
            f"http://127.0.0.1:{self.metrics_port}/metrics",
            headers={"Authorization": f"Bearer {token or self.metrics_token}"},
            timeout=10,
        )

    @property
    def url(self) -> str:
        return f"http://{self.bind}:{self.http_port}"

    @property
    def prefix(self) -> Path:
        from edgeplane.node.agent.paths import nginx_prefix

        return nginx_prefix(self.home / "edge" / self.name, self.name)

    def start(self) -> EdgeAgent:
        prefix = ["ip", "netns", "exec", self.netns] if self.netns else []
        extra = ["--address", self.address] if self.address else []
        with self.log.open("a") as out:
            self.process = subprocess.Popen(
                [
                    *prefix,
                    sys.executable,
                    "-m",
                    "edgeplane",
                    "edge",
                    "--control-plane",
                    self.control_plane,
                    "--region",
                    self.region,
                    "--name",
                    self.name,
                    "--http-port",
                    str(self.http_port),
                    "--https-port",
                    str(self.https_port),
                    "--home",
                    str(self.home),
                    "--poll-wait",
                    "20",
                    "--analytics-interval",
                    str(self.analytics_interval),
                    "--dns-port",
                    str(self.dns_port),
                    "--bind",
                    self.bind,
                    "--metrics-port",
                    str(self.metrics_port),
                    *extra,
                    *self.extra_args,
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=clean_env(EDGEPLANE_TOKEN=self.token, **(self.env or {})),
            )
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.send_signal(signal.SIGUSR2)  # the agent dumps its stacks
                time.sleep(1.0)
                self.process.kill()
                self.process.wait()
                tail = "\n".join(self.output().splitlines()[-80:])
                raise AssertionError(
                    f"{self.name} did not stop within {timeout:.0f}s; its log ends:\n{tail}"
                ) from None
        return self.process.returncode

    def output(self) -> str:
        return self.log.read_text()

    def nginx_pids(self) -> list[int]:
        """nginx masters whose command line names this agent's prefix."""
        return pids_of(b"nginx", self.prefix)

    def get(self, host: str, path: str, **kw: Any) -> httpx.Response:
        headers = {"Host": host, **kw.pop("headers", {})}
        return httpx.get(f"{self.url}{path}", headers=headers, timeout=10, **kw)


def pids_of(program: bytes, under: Path) -> list[int]:
    """Processes of ``program`` whose command line names a path under ``under``."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmd and program in cmd[0] and str(under).encode() in b" ".join(cmd):
            pids.append(int(proc.name))
    return pids


def searchable_tmp(prefix: str) -> Path:
    """A temporary folder nginx workers (www-data when the tests run as root) can traverse,
    unlike pytest's own (0700); the caller removes it."""
    import tempfile

    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


def new_agent(cp: ControlPlane, api: Api, tmp: Path, name: str, **kw: Any) -> EdgeAgent:
    tmp.mkdir(parents=True, exist_ok=True)
    return EdgeAgent(
        name=name,
        home=tmp / f"home-{name}",
        http_port=free_port(),
        control_plane=cp.url,
        token=api.edge_token(f"edge-{name}"),
        log=tmp / f"agent-{name}.log",
        **kw,
    )
