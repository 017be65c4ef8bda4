"""Keep the agent's memory close to what it holds: one malloc arena, and free memory returned.

Measured on a node serving 10,000 domains (an agent's RSS after the loading phase and five
changes, `/proc/<pid>/smaps`): glibc gave each thread that allocated (the apply, DNS and geo
workers, the thread pool) an arena of its own, and five of them held 91 MiB between them,
mostly memory freed by the peaks of the loading phase and kept for reuse by that thread
alone. With one arena (``single_arena``, before any thread starts) the same run ended at 264
MiB instead of 314; Python's GIL serialises the threads' allocations anyway.

Parsing thousands of zones or certificates at once (a node's first apply of 10,000 domains, a
DNS apply that creates thousands of zones) leaves the allocator holding memory the objects no
longer use. After such work the agent collects garbage cycles and asks glibc to release free
memory (``release``); after every apply it asks glibc alone (``trim``: no collection, a few
ms). Measured on 10,000 parsed zones, 11 of the 72 MiB they took came back that way; the rest
stays in Python's own arenas while survivors share them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc

LARGE = 1000  # objects handled at once from which the agent releases memory afterwards
M_ARENA_MAX = -8  # mallopt's parameter (glibc malloc.h)

_trim = None
_mallopt = None
try:
    _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    _trim = _libc.malloc_trim
    _mallopt = _libc.mallopt
except (OSError, AttributeError):  # not glibc
    pass


def single_arena() -> bool:
    """One malloc arena for every thread started from now on; True when glibc took it."""
    return bool(_mallopt is not None and _mallopt(M_ARENA_MAX, 1))


def trim() -> None:
    """Return free heap memory to the system where glibc allows."""
    if _trim is not None:
        _trim(0)


def release() -> None:
    """Collect cycles, then return free heap memory to the system."""
    gc.collect()
    trim()
