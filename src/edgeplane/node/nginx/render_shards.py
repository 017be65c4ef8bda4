"""Big maps in shard files named by their content, so that one change re-renders one shard.

A node with 10,000 domains has maps of 10,000 names (the site of a host, the HTTPS redirect,
the certificate link of an SNI name, ...): rendering them took most of an apply, for a change
of one name. A map of at least ``SHARD_MIN`` literal keys is rendered as its head (``default``,
``hostnames``) and ``include`` lines of shard files: each key goes to the shard its CRC-32
picks among a power-of-two number of shards (about ``SHARD_ENTRIES`` keys each), so a key
keeps its shard from one snapshot to the next and a change of one key changes one shard.

A shard's text lists its keys sorted, so it is a function of its entries alone, and is named
by the hash of its text: ``maps/<hash>.map`` under the node's prefix, beside ``releases/``,
included by a path relative to the release directory (nginx's configuration prefix). The
engine writes only the shards it has not written yet, and a shard, like a release, is never
changed once written: a release directory plus the shards it names is the whole configuration.

An engine keeps a ``ShardMemo`` from one render to the next: each big map's entries, their
buckets and the buckets' files. The next render of the map compares its entries with the
memo's (a dictionary comparison, in C) and re-renders only the buckets of the keys that
changed: one domain added to 10,000 re-renders one shard per map, and sorts, hashes and
formats nothing else. Without a memo (a render from nothing) every bucket is rendered; the
text is the same either way.

Only maps whose keys are all literal (no regex: their order would matter) are sharded; nginx
matches a literal key the same wherever in the map's files it is.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from edgeplane.node.nginx.syntax import block, lit, map_key

SHARD_DIR = "maps"  # under the prefix
SHARD_PATH = "../../maps"  # the same, from a release directory (``prefix/releases/<marker>/``)
SHARD_MIN = 1024  # keys: a smaller map stays inline
SHARD_ENTRIES = 256  # keys per shard, about


@dataclass(frozen=True)
class _Sharded:
    """A big map as last rendered: its entries, split into buckets, and each bucket's file."""

    quote: bool
    entries: dict[str, str]
    buckets: list[dict[str, str]]
    files: list[tuple[str, bytes]]  # (file name, content) per bucket


ShardMemo = dict[str, _Sharded]  # "<source> <target>" -> the map as last rendered


@dataclass
class Shards:
    """The shard files a release names: file name -> content (written under ``SHARD_DIR``).
    With ``memo``, the big maps start from their last render (and leave theirs in it)."""

    files: dict[str, bytes] = field(default_factory=dict)
    memo: ShardMemo | None = None

    def sharded_map(
        self,
        source: str,
        target: str,
        entries: Mapping[str, str] | list[tuple[str, str]],
        *,
        default: str = '""',
        hostnames: bool = False,
        quote: bool = False,
    ) -> str:
        """``map SOURCE $TARGET { ... }`` with literal keys; values are written as given, or
        quoted with ``quote``. A big map's entries go to shards (a key given twice: the
        last value)."""
        head = ["hostnames;"] if hostnames else []
        head.append(f"default {default};")
        if len(entries) < SHARD_MIN:
            items = entries.items() if isinstance(entries, Mapping) else entries
            lines = [f"{map_key(k)} {lit(v) if quote else v};" for k, v in items]
            return block(f"map {source} {target}", head + lines)
        key = f"{source} {target}"
        last = self.memo.get(key) if self.memo is not None else None
        sharded = _shard(dict(entries), quote, last)
        if self.memo is not None:
            self.memo[key] = sharded
        includes = []
        for name, content in sharded.files:
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


def _bucket(key: str, count: int) -> int:
    return zlib.crc32(key.encode()) & (count - 1)


def _shard(entries: dict[str, str], quote: bool, last: _Sharded | None) -> _Sharded:
    """``entries`` in buckets and files: from ``last``, the buckets of changed keys only."""
    count = shard_count(len(entries))
    if last is None or last.quote != quote or len(last.buckets) != count:
        buckets: list[dict[str, str]] = [{} for _ in range(count)]
        for k, v in entries.items():
            buckets[_bucket(k, count)][k] = v
        return _Sharded(quote, entries, buckets, [_render(b, quote) for b in buckets])
    if entries == last.entries:
        return last
    buckets, files = list(last.buckets), list(last.files)
    # The memo's entries are the last ones with the changes made: the keys that did not
    # change stay the strings the buckets hold (the caller's are equal copies, made anew
    # by each render: a second copy of every key of every big map, megabytes at 10,000).
    kept = dict(last.entries)
    dirty: dict[int, dict[str, str]] = {}
    for k, _ in entries.items() ^ last.entries.items():  # added, removed or changed keys
        i = _bucket(k, count)
        bucket = dirty.get(i)
        if bucket is None:
            bucket = dirty[i] = dict(buckets[i])
        if k in entries:
            bucket[k] = kept[k] = entries[k]
        else:
            bucket.pop(k, None)
            kept.pop(k, None)
    for i, bucket in dirty.items():
        buckets[i] = bucket
        files[i] = _render(bucket, quote)
    return _Sharded(quote, kept, buckets, files)


def _render(bucket: dict[str, str], quote: bool) -> tuple[str, bytes]:
    """(file name, content) of a shard: its keys sorted, named by the hash of the text."""
    text = "".join(
        f"{map_key(k)} {lit(bucket[k]) if quote else bucket[k]};\n" for k in sorted(bucket)
    )
    content = text.encode()
    return hashlib.sha256(content).hexdigest()[:32] + ".map", content
