"""When to try a failed delivery again: exponential backoff, then giving up.

After the first failure the next try waits 5 s, then 15, 45, 135 and 405 s (each three times
the one before): six attempts in all over about ten minutes. ``retry_delay(n)`` is the wait
after ``n`` failures; None after the sixth means give up (the alert keeps its last error).
"""

from __future__ import annotations

FIRST_DELAY_S = 5.0
FACTOR = 3.0
MAX_ATTEMPTS = 6


def retry_delay(attempt: int) -> float | None:
    """Seconds to wait before the next try after ``attempt`` failures (1-5), or None to give
    up (``attempt`` >= 6)."""
    if attempt < 1:
        raise ValueError(f"attempt counts the failures so far: at least 1, not {attempt}")
    if attempt >= MAX_ATTEMPTS:
        return None
    return FIRST_DELAY_S * FACTOR ** (attempt - 1)
