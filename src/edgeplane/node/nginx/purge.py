"""Purge cached objects by reading the ``KEY:`` line of each cache file.

Cache keys are ``"<site id>|<host or empty>|<uri>|<query part>|<extra>"``; a purge task names
the site and exact paths, path prefixes, or everything of the site.
"""

from __future__ import annotations

import os
from pathlib import Path

from edgeplane.protocol.messages import PurgeTask

_HEAD = 4096  # the key sits in the file header, well within the first KiB


def read_key(path: Path) -> str | None:
    try:
        with path.open("rb") as f:
            head = f.read(_HEAD)
    except OSError:
        return None
    start = head.find(b"\nKEY: ")
    if start < 0:
        return None
    end = head.find(b"\n", start + 6)
    if end < 0:
        return None
    return head[start + 6 : end].decode("utf-8", "replace")


def key_matches(key: str, task: PurgeTask) -> bool:
    parts = key.split("|", 2)
    if len(parts) < 3 or parts[0] != task.site:
        return False
    if task.purge_all:
        return True
    rest = parts[2]  # "<uri>|<query>|<extra>"
    return any(rest.startswith(p + "|") for p in task.paths) or any(
        rest.startswith(p) for p in task.prefixes
    )


def purge_cache(cache_dir: Path, task: PurgeTask) -> int:
    """Unlink every cached object of the task; returns how many were removed."""
    removed = 0
    for root, _dirs, files in os.walk(cache_dir):
        for name in files:
            if "." in name:  # a temporary file being written
                continue
            path = Path(root) / name
            key = read_key(path)
            if key is not None and key_matches(key, task):
                try:
                    path.unlink()
                    removed += 1
                except FileNotFoundError:
                    pass
    return removed
