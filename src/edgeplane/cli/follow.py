"""Following a page of log lines: the latest ones, then every second those that arrived since,
until Ctrl-C or SIGTERM (``edgeplane logs --follow``, ``edgeplane function logs --follow``)."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import typer

from edgeplane.cli import runtime as rt
from edgeplane.cli.output import Doc

if TYPE_CHECKING:
    from edgeplane.sdk.client import Client

FOLLOW_EVERY_S = 1.0
FOLLOW_LIMIT = 1000  # lines per poll while following


def tail(
    ctx: typer.Context,
    url: str,
    params: dict[str, Any],
    key: str,
    show: Callable[[list[Doc], bool], None],
) -> None:
    """Print the latest lines of a page (``key``: its list, newest first), then every second
    the lines that arrived since (``after=next_after``, oldest first), until SIGINT/SIGTERM.
    ``show(lines, header)`` prints lines oldest first (``header``: the first batch)."""

    async def run(c: Client) -> None:
        async with _stopped_by_signals() as stop:
            doc = await _unless(stop, c.request("GET", url, params=params))
            if doc is None:
                return
            show(list(reversed(doc[key])), True)
            after = doc["next_after"]
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), FOLLOW_EVERY_S)
                query = {**params, "limit": FOLLOW_LIMIT, "after": after}
                doc = await _unless(stop, c.request("GET", url, params=query))
                if doc is None:
                    return
                show(doc[key], False)
                after = doc["next_after"]

    try:
        rt.call(ctx, run)
    except KeyboardInterrupt:
        raise typer.Exit(0) from None


@contextlib.asynccontextmanager
async def _stopped_by_signals() -> AsyncIterator[asyncio.Event]:
    """An event set by Ctrl-C (or SIGTERM): following ends there, the request in flight
    dropped, with status 0. A second Ctrl-C ends the process at once."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        if stop.is_set():
            os._exit(130)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    try:
        yield stop
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def _unless(stop: asyncio.Event, request: Awaitable[Any]) -> Any:
    """What ``request`` answers; None when ``stop`` is set first (the request cancelled)."""
    if stop.is_set():
        if inspect.iscoroutine(request):
            request.close()
        return None
    asked = asyncio.ensure_future(request)
    stopped = asyncio.ensure_future(stop.wait())
    await asyncio.wait({asked, stopped}, return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    if asked.done():
        return asked.result()
    asked.cancel()
    return None
