"""Where a node's nginx lives.

nginx workers run as another user (``www-data``) when the agent runs as root, and they read
certificates and write the cache under the nginx prefix, so every directory above the prefix
must be searchable by them. The prefix is ``<state dir>/nginx`` whenever that holds (the state
directory itself is made 0711: searchable, not listable; its files are 0600). When the state
directory sits under a private directory (``/root``, a 0700 temporary folder) the prefix goes
to ``SYSTEM_ROOT/<name>-<hash of the state dir>/nginx`` instead, one per state directory.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

SYSTEM_ROOT = Path("/var/lib/edgeplane/edge")


def searchable_by_others(path: Path) -> bool:
    """Whether every existing directory from ``path`` up to / has o+x."""
    for parent in [path, *path.parents]:
        try:
            mode = parent.stat().st_mode
        except FileNotFoundError:
            continue
        if not mode & 0o001:
            return False
    return True


def nginx_prefix(state_dir: Path, name: str) -> Path:
    state_dir = state_dir.resolve()
    if os.geteuid() != 0 or searchable_by_others(state_dir.parent):
        return state_dir / "nginx"
    digest = hashlib.sha256(str(state_dir).encode()).hexdigest()[:8]
    return SYSTEM_ROOT / f"{name}-{digest}" / "nginx"
