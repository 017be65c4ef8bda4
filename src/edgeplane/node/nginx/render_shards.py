"""Big maps in shard files named by their content, so that one change re-renders one shard.

A node with 10,000 domains has maps of 10,000 names (the site of a host, the HTTPS redirect,
the certificate link of an SNI name, ...): rendering them took most of an apply, for a change
of one name. A map of at least ``SHARD_MIN`` literal keys is rendered as its head (``default``,
``hostnames``) and ``include`` lines of shard files: each key goes to the shard its CRC-32
picks among a power-of-two number of shards (about ``SHARD_ENTRIES`` keys each), so a key
keeps its shard from one snapshot to the next and a change of one key changes one shard.

A shard is rendered once per distinct content (``_render``, memoised on its entries) and named
by the hash of its text: ``maps/<hash>.map`` under the node's prefix, beside ``releases/``,
included by a path relative to the release directory (nginx's configuration prefix). The
engine writes only the shards it has not written yet, and a shard, like a release, is never
changed once written: a release directory plus the shards it names is the whole configuration.

Only maps whose keys are all literal (no regex: their order would matter) are sharded; nginx
matches a literal key the same wherever in the map's files it is.
"""

from __future__ import annotations

import hashlib
import threading
import zlib
from collections import OrderedDict
from dataclasses import dataclass, field

from edgeplane.node.nginx.syntax import block, lit, map_key

SHARD_DIR = "maps"  # under the prefix
SHARD_PATH = "../../maps"  # the same, from a release directory (``prefix/releases/<marker>/``)
SHARD_MIN = 1024  # keys: a smaller map stays inline
SHARD_ENTRIES = 256  # keys per shard, about
_MEMO_MAX = 4096  # shards kept rendered (about 10 MiB of text at 10,000 domains)


@dataclass
class Shards:
    """The shard files a release names: file name -> content (written under ``SHARD_DIR``)."""

    files: dict[str, bytes] = field(default_factory=dict)

    def sharded_map(
        self,
        source: str,
        target: str,
        entries: list[tuple[str, str]],
        *,
        default: str = '""',
        hostnames: bool = False,
        quote: bool = False,
    ) -> str:
        """``map SOURCE $TARGET { ... }`` with literal keys, as ``syntax.map_block``; values
        are written as given, or quoted with ``quote``. A big map's entries go to shards."""
        head = ["hostnames;"] if hostnames else []
        head.append(f"default {default};")
        if len(entries) < SHARD_MIN:
            lines = [f"{map_key(k)} {lit(v) if quote else v};" for k, v in entries]
            return block(f"map {source} {target}", head + lines)
        count = shard_count(len(entries))
        buckets: list[list[tuple[str, str]]] = [[] for _ in range(count)]
        for entry in entries:
            buckets[zlib.crc32(entry[0].encode()) & (count - 1)].append(entry)
        includes = []
        for bucket in buckets:
            name, content = _render(tuple(bucket), quote)
            self.files[name] = content
            includes.append(f"include {SHARD_PATH}/{name};")
        return block(f"map {source} {target}", head + includes)


def shard_count(keys: int) -> int:
    """A power of two near ``keys / SHARD_ENTRIES``: it changes only when the map doubles or
    halves, so that a key stays in its shard."""
    count = 1
    while count * SHARD_ENTRIES < keys:
        count *= 2
    return count


_memo: OrderedDict[tuple[bool, tuple[tuple[str, str], ...]], tuple[str, bytes]] = OrderedDict()
_memo_lock = threading.Lock()


def _render(entries: tuple[tuple[str, str], ...], quote: bool) -> tuple[str, bytes]:
    """(file name, content) of a shard: memoised, so an unchanged shard is not rendered again
    (the key is the entries themselves: equal entries, equal text)."""
    key = (quote, entries)
    with _memo_lock:  # engines of several nodes in one process render in their own threads
        hit = _memo.get(key)
        if hit is not None:
            _memo.move_to_end(key)
            return hit
    text = "".join(f"{map_key(k)} {lit(v) if quote else v};\n" for k, v in entries)
    content = text.encode()
    made = (hashlib.sha256(content).hexdigest()[:32] + ".map", content)
    with _memo_lock:
        _memo[key] = made
        while len(_memo) > _MEMO_MAX:
            _memo.popitem(last=False)
    return made


def forget_memo() -> None:
    """Drop the rendered shards (tests: a render from nothing)."""
    with _memo_lock:
        _memo.clear()
