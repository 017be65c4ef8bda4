"""Failed sign-ins slow down password guessing: after ``limit`` failures within ``window_s`` for
one key (a login's name: 5; a client's address: 30), sign-ins for it are refused (429) until the
oldest failure leaves the window. Kept in the process's memory (each API process counts its
own)."""

from __future__ import annotations

import threading
import time
from collections import deque

from edgeplane.errors import TooManyRequests

LOGIN_LIMIT = 5
CLIENT_LIMIT = 30
WINDOW_S = 300.0
MAX_KEYS = 10_000


class SignInThrottle:
    def __init__(self, limit: int, window_s: float = WINDOW_S) -> None:
        self.limit = limit
        self.window_s = window_s
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        seen = self._failures.get(key)
        if seen is None:
            return deque()
        while seen and seen[0] <= now - self.window_s:
            seen.popleft()
        if not seen:
            del self._failures[key]
        return seen

    def check(self, key: str) -> None:
        """Refuse when ``key`` has too many recent failures."""
        now = time.monotonic()
        with self._lock:
            seen = self._recent(key, now)
            if len(seen) >= self.limit:
                wait = int(seen[0] + self.window_s - now) + 1
                raise TooManyRequests(
                    f"too many failed sign-ins; try again in {wait} s", retry_after=wait
                )

    def failed(self, key: str) -> None:
        now = time.monotonic()
        with self._lock:
            if len(self._failures) >= MAX_KEYS:  # bounded memory under a spray of names
                self._failures.clear()
            self._failures.setdefault(key, deque()).append(now)

    def succeeded(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)


def sign_in_throttles() -> tuple[SignInThrottle, SignInThrottle]:
    """(by login name, by client address)."""
    return SignInThrottle(LOGIN_LIMIT), SignInThrottle(CLIENT_LIMIT)
