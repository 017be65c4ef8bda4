"""Reading other processes' command lines from /proc (engine processes we may adopt)."""

from __future__ import annotations

from pathlib import Path


def cmdline(pid: int) -> list[str]:
    """The command line of ``pid``; empty when it is gone or unreadable."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]
