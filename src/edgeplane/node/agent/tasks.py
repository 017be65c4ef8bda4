"""Stopping the agent's tasks for sure.

One ``cancel()`` is not always enough on Python 3.11: ``asyncio.wait_for`` can swallow a
cancellation that arrives as the awaited thing completes (fixed in 3.12), and the loop around
it then runs on, so a plain ``gather`` after one ``cancel`` may wait forever (an agent that
never stops on SIGTERM). ``cancel_all`` cancels again until every task has ended.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

log = logging.getLogger("edgeplane.agent")


async def cancel_all(tasks: Iterable[asyncio.Task[object]], patience_s: float = 10.0) -> None:
    """Cancel ``tasks`` (repeatedly) until all have ended, for up to ``patience_s``."""
    pending = {t for t in tasks if not t.done()}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + patience_s
    while pending and loop.time() < deadline:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.1)
    for task in pending:
        log.error("task %s did not stop", task.get_name())
