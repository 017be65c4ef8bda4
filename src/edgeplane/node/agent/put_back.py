"""Putting back the lines of a report that was not sent, into a buffer that keeps, per key,
the newest lines in arrival order (``OrderedDict`` of deques, the quietest key first)."""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

T = TypeVar("T")


def put_back(
    kept_by_key: OrderedDict[str, deque[Any]],  # lines of T, or what they came from
    lines: Iterable[T],
    key_of: Callable[[T], str],
    per_key: int,
    room_total: int,
) -> tuple[list[T], int]:
    """Each key's ``lines`` go back before the lines it received since, as many as its
    ``per_key`` and the buffer's ``room_total`` leave room for (the newest of them); a key
    that was not kept any more is kept again as the quietest. The lines put back, and the
    number that did not fit."""
    by_key: dict[str, list[T]] = {}
    for line in lines:
        by_key.setdefault(key_of(line), []).append(line)
    back_all: list[T] = []
    dropped = 0
    for key, older in by_key.items():
        kept = kept_by_key.get(key)
        if kept is None:
            kept = kept_by_key[key] = deque()
            kept_by_key.move_to_end(key, last=False)  # quiet since: trimmed first
        room = max(0, min(per_key - len(kept), room_total))
        back = older[len(older) - room :] if room else []
        kept.extendleft(reversed(back))
        room_total -= len(back)
        back_all.extend(back)
        dropped += len(older) - len(back)
        if not kept:
            del kept_by_key[key]
    return back_all, dropped
