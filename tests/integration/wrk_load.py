"""A steady (or oscillating) request rate through the edge with wrk, and what it saw.

wrk sends as fast as it can; a Lua ``delay()`` makes each connection wait between requests,
so ``connections * 1000 / (delay_ms + latency)`` is the rate. Every request asks for
``Connection: close``: nginx closes its idle kept-alive connections when it reloads (wrk
counts the close as a read error even though no request was lost), while a connection that
has not sent its request yet is served. A request counts as failed when wrk saw a socket
error or a status other than 2xx / 3xx.
"""

from __future__ import annotations

import json
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

SCRIPT = """
wrk.headers["Host"] = "%(host)s"
wrk.headers["Connection"] = "close"
local slow, fast, period = %(slow)d, %(fast)d, %(period)d
function delay()
  if period > 0 and math.floor(os.time() / period) %% 2 == 1 then return slow end
  return fast
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %%d, "duration_us": %%d, "connect": %%d, "read": %%d, "write": %%d, ' ..
    '"status": %%d, "timeout": %%d, "p50_us": %%d, "p99_us": %%d}\\n', summary.requests,
    summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


@dataclass
class WrkResult:
    requests: int
    seconds: float
    errors: dict[str, int] = field(default_factory=dict)
    p50_ms: float = 0.0
    p99_ms: float = 0.0

    @property
    def failed(self) -> int:
        return sum(self.errors.values())

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


class Wrk:
    """``with Wrk(url, host, connections=5, delay_ms=38) as load: ...; load.result``; with
    ``slow_ms`` and ``period_s``, the delay alternates between ``delay_ms`` and ``slow_ms``
    every ``period_s`` seconds (an oscillating load)."""

    def __init__(
        self,
        url: str,
        host: str,
        *,
        connections: int = 5,
        delay_ms: int = 38,
        slow_ms: int | None = None,
        period_s: int = 0,
        max_seconds: int = 600,
    ) -> None:
        self.url, self.connections, self.max_seconds = url, connections, max_seconds
        script = SCRIPT % {
            "host": host,
            "fast": delay_ms,
            "slow": delay_ms if slow_ms is None else slow_ms,
            "period": period_s,
        }
        self._dir = tempfile.TemporaryDirectory(prefix="wrk-")
        self.script = Path(self._dir.name) / "load.lua"
        self.script.write_text(script)
        self.process: subprocess.Popen[str] | None = None
        self.result: WrkResult | None = None
        self.started = 0.0

    def start(self) -> Wrk:
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            ["wrk", "-t1", f"-c{self.connections}", f"-d{self.max_seconds}s", "--timeout", "10s",
             "-s", str(self.script), self.url],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        return self

    def stop(self) -> WrkResult:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # wrk stops, prints, runs done()
        out, _ = self.process.communicate(timeout=30)
        summary = next((line for line in out.splitlines() if line.startswith('{"requests"')), None)
        if summary is None:
            raise RuntimeError(f"wrk printed no summary:\n{out}")
        doc = json.loads(summary)
        errors = {k: int(doc[k]) for k in ("connect", "read", "write", "status", "timeout")}
        self.result = WrkResult(
            doc["requests"], doc["duration_us"] / 1e6, errors, doc["p50_us"] / 1e3,
            doc["p99_us"] / 1e3,
        )  # fmt: skip
        self._dir.cleanup()
        return self.result

    def __enter__(self) -> Wrk:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.result is None:
            self.stop()
