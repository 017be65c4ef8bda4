"""Replicas of the control plane for tests: ``edgeplane serve`` processes sharing one database,
and nginx in front of them as their load balancer."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from processes import ControlPlane, free_port


def start_serve(
    home: Path, env: dict[str, str], name: str, port: int | None = None
) -> ControlPlane:
    """``edgeplane serve --home HOME --port P``, waiting until /healthz answers."""
    port = port or free_port()
    log = home.parent / f"{name}.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "edgeplane", "serve", "--home", str(home), "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
    cp = ControlPlane(process, home, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited: {cp.output()[-3000:]}")
        try:
            if httpx.get(f"{cp.url}/healthz", timeout=1).status_code == 200:
                return cp
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    cp.stop(signal.SIGKILL)
    raise RuntimeError(f"{name} did not answer within 60 s: {cp.output()[-3000:]}")


@dataclass
class Balancer:
    """nginx proxying to the replicas: a replica that refuses connections is skipped (a
    request that was not sent is passed to the next one; one that was sent is not retried,
    as a client would want of a write)."""

    process: subprocess.Popen[bytes]
    url: str
    prefix: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_balancer(prefix: Path, ports: list[int]) -> Balancer:
    prefix.mkdir(parents=True, exist_ok=True)
    os.chmod(prefix, 0o755)
    port = free_port()
    servers = "".join(f"    server 127.0.0.1:{p} max_fails=1 fail_timeout=5s;\n" for p in ports)
    conf = prefix / "nginx.conf"
    conf.write_text(
        f"""worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {prefix}/body;
  proxy_temp_path {prefix}/proxy;
  fastcgi_temp_path {prefix}/fastcgi;
  uwsgi_temp_path {prefix}/uwsgi;
  scgi_temp_path {prefix}/scgi;
  upstream control_plane {{
{servers}    keepalive 16;
  }}
  server {{
    listen 127.0.0.1:{port};
    client_max_body_size 64m;
    location / {{
      proxy_pass http://control_plane;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_connect_timeout 1s;
      proxy_read_timeout 120s;
      proxy_buffering off;
      proxy_next_upstream error timeout;
    }}
  }}
}}
"""
    )
    process = subprocess.Popen(
        ["nginx", "-p", str(prefix), "-c", str(conf), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"nginx exited: {process.stderr.read().decode() if process.stderr else ''}"
            )
        try:
            httpx.get(f"{url}/healthz", timeout=1)
            return Balancer(process, url, prefix)
        except httpx.HTTPError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("the balancer did not listen within 10 s")
