"""Serving the control plane's app with uvicorn, and stopping it quietly and quickly.

uvicorn stops by closing its listeners, then waiting up to ``timeout_graceful_shutdown`` for
the requests in progress, then cancelling those still running (each logged at ERROR with its
traceback). Edge agents' long-polls wait up to their ``wait`` (25 s) by design, so every stop
used to end in that cancellation. ``ControlPlaneServer`` releases them first: the notifier is
closed, every long-poll answers at once what it has (nothing new, a normal answer sent with
``Connection: close``), and the graceful shutdown finds nothing left to cancel. The agents poll
again, find the server gone and keep serving what they have until it is back.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from types import FrameType

import uvicorn

from edgeplane.api.notify import RevisionNotifier


class ControlPlaneServer(uvicorn.Server):
    """``uvicorn.Server`` that releases the long-polls when it stops; ``on_started`` runs once
    the API listens (``edgeplane up`` says it is up and starts its edge node then);
    ``on_signal`` runs at the first SIGINT / SIGTERM that uvicorn catches (``edgeplane up``
    stops its edge agent then, side by side with the API's shutdown)."""

    def __init__(
        self,
        config: uvicorn.Config,
        notifier: RevisionNotifier,
        *,
        on_signal: Callable[[], None] | None = None,
        on_started: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(config)
        self.notifier = notifier
        self.on_signal = on_signal
        self.on_started = on_started

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and self.on_started is not None:
            self.on_started()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        first = not self.should_exit
        super().handle_exit(sig, frame)
        if first and self.on_signal is not None:
            self.on_signal()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.notifier.close()
        await super().shutdown(sockets)
