"""Stopping the background runner does not wait for a job's pass over many items."""

from __future__ import annotations

import asyncio
import threading
import time

from conftest import Api
from edgeplane.services.jobs import check_world_dns
from edgeplane.services.runner import Job, Runner
from edgeplane.settings import Settings

INV = "/api/v1/infrastructure"


class StopAfter(threading.Event):
    """Says "stop" once it has been asked ``n`` times."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n

    def is_set(self) -> bool:
        self.n -= 1
        return self.n < 0


def test_a_world_dns_check_ends_between_domains_when_stopping(api: Api) -> None:
    for name in ("one.example", "two.example", "three.example"):
        assert api.post(f"{INV}/domains", json={"domain": name}).status_code == 201
    # Nothing answers DNS here: every check fails after its timeout, and is recorded.
    settings = Settings(home=api.tmp / "home", dns_resolvers=("127.0.0.1:9",), verify_timeout_s=0.1)
    assert check_world_dns(api.db, settings, StopAfter(1)) == 1
    # the domains not checked are still due, the one checked is not
    assert check_world_dns(api.db, settings, threading.Event()) == 2
    assert check_world_dns(api.db, settings, threading.Event()) == 0


def test_stopping_the_runner_tells_a_running_job() -> None:
    stopping = threading.Event()
    started = threading.Event()

    def long_pass() -> None:  # a pass over many items, looking at ``stopping`` between them
        started.set()
        for _ in range(3000):
            if stopping.is_set():
                return
            time.sleep(0.01)

    async def main() -> float:
        runner = Runner([Job("long", 60, long_pass)], stopping)
        runner.start()
        await asyncio.to_thread(started.wait, 10)
        t0 = time.monotonic()
        await runner.stop()
        return time.monotonic() - t0

    assert asyncio.run(main()) < 5  # not the 30 s of the pass
    assert stopping.is_set()
