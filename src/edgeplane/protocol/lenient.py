"""Reading what a newer control plane sends: unknown fields ignored, and named.

The snapshot's models forbid unknown fields (``Frozen``): what the control plane builds is
checked strictly. An agent reads them with ``parse_json``: the strict parse first, in one pass
as before; only when it fails on unknown fields alone are those removed and the rest parsed
again, and their paths given back (``sites[].new_field``: positions in a sequence are
``[]``, so a field new in every site is one path). Any other error is raised as it is.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)
# What pydantic calls an unknown field: of a model, of a dataclass (``VerificationSpec``).
UNKNOWN_FIELD = frozenset({"extra_forbidden", "unexpected_keyword_argument"})
MAX_PATHS = 100  # at most this many paths are kept (in an Ack, in logs)


def parse_json(
    model: type[M],
    raw: bytes | str,
    place: Callable[[Sequence[int | str]], Sequence[int | str]] = tuple,
) -> tuple[M, list[str]]:
    """``model`` parsed from ``raw`` and the paths of the unknown fields left out (sorted,
    without repeats; none in the common case, which costs one strict parse). ``place``: what
    a field's place in ``raw`` is called in the paths (``snapshot_loc``)."""
    try:
        return model.model_validate_json(raw), []
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False, include_context=False)
        if not errors or any(e["type"] not in UNKNOWN_FIELD for e in errors):
            raise
    doc = json.loads(raw)
    locs = [tuple(e["loc"]) for e in errors]
    # The deepest first: removing a field never moves another one's place.
    for loc in sorted(locs, key=len, reverse=True):
        _remove(doc, loc)
    value = model.model_validate_json(json.dumps(doc))
    return value, paths(place(loc) for loc in locs)


def _remove(doc: Any, loc: Sequence[int | str]) -> None:
    node = doc
    for step in loc[:-1]:
        node = node[step]
    if isinstance(node, dict):
        node.pop(loc[-1], None)


MAX_PATH_LENGTH = 300  # characters of a path (as an Ack carries it)


def path(loc: Iterable[int | str]) -> str:
    """``("sites", 3, "new")`` -> ``sites[].new``; a character that is not printable shown as
    ``?`` (a name comes from the control plane), at most ``MAX_PATH_LENGTH`` characters."""
    out = ""
    for step in loc:
        if isinstance(step, int):
            out += "[]"
        else:
            name = "".join(c if c.isprintable() else "?" for c in str(step))
            out += f".{name}" if out else name
    return out[:MAX_PATH_LENGTH]


def paths(locs: Iterable[Sequence[int | str]]) -> list[str]:
    return sorted({path(loc) for loc in locs})[:MAX_PATHS]


def snapshot_loc(loc: Sequence[int | str]) -> tuple[int | str, ...]:
    """A place in a long-poll's answer (``ConfigPoll``) as a place in the snapshot: the
    manifest's and the full snapshot's own fields, a delta's ``sites.added[][1]`` as
    ``sites[]``."""
    if not loc:
        return ()
    head, rest = loc[0], tuple(loc[1:])
    if head in ("manifest", "config"):
        return rest
    if head == "delta" and len(rest) >= 4 and rest[1] == "added" and rest[3] == 1:
        return (rest[0], 0, *rest[4:])
    if head == "delta":
        return rest
    return tuple(loc)


def parse_poll(model: type[M], raw: bytes | str) -> tuple[M, list[str]]:
    """A long-poll's answer, and the unknown fields left out as places in the snapshot."""
    return parse_json(model, raw, snapshot_loc)
