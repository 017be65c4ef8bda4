"""The MaxMind DB file format (https://maxmind.github.io/MaxMind-DB/): enough to rewrite one.

A ``.mmdb`` file is a binary search tree over IP prefixes (``node_count`` nodes of two
records of ``record_size`` bits each), 16 zero bytes, a data section of typed values (maps,
strings, numbers, pointers to shared values) and, after a marker, the metadata map. A tree
record below ``node_count`` points at a node, ``node_count`` itself means "no data", and a
value above it points into the data section at ``value - node_count - 16``.

:func:`read` splits a file into its parts with the tree records as numpy arrays (a database
of millions of networks is parsed in about a second); :class:`Decoder` reads data-section
values, remembering every value reached through a pointer (a City database shares one
country map among thousands of records); :func:`encode` writes values; :func:`write`
assembles a file from a tree (the same shape, records remapped) and a new data section.
Pure functions over bytes: the callers do the file I/O.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

# numpy is imported inside the functions that read or write a search tree: only a ranking
# build (a process of its own) does, and an edge agent that imported numpy would hold 17 MiB
# more for this module.
if TYPE_CHECKING:
    import numpy.typing as npt

METADATA_MARKER = b"\xab\xcd\xefMaxMind.com"
DATA_SEPARATOR = 16  # zero bytes between the tree and the data section

Records: TypeAlias = "npt.NDArray[Any]"  # uint32 tree records
# The integer types libmaxminddb insists on in the metadata (5 uint16, 6 uint32, 9 uint64).
METADATA_UINTS = {
    "node_count": 6,
    "record_size": 5,
    "ip_version": 5,
    "binary_format_major_version": 5,
    "binary_format_minor_version": 5,
    "build_epoch": 9,
}


class MmdbFormatError(ValueError):
    """The bytes are not a MaxMind DB file this module can read."""


@dataclass(frozen=True)
class Database:
    metadata: dict[str, Any]
    node_count: int
    record_size: int  # bits: 24, 28 or 32
    left: Records  # the two records of every node, in node order
    right: Records
    buffer: bytes  # the whole file
    data_start: int  # offset of the data section in ``buffer``

    def data_offset(self, record: int) -> int:
        """The data-section offset (from ``data_start``) a data record points at."""
        return record - self.node_count - DATA_SEPARATOR


def read(buffer: bytes) -> Database:
    marker = buffer.rfind(METADATA_MARKER)
    if marker < 0:
        raise MmdbFormatError("no MaxMind DB metadata marker: not a .mmdb file")
    metadata, _ = Decoder(buffer, marker + len(METADATA_MARKER)).decode(0)
    if not isinstance(metadata, dict):
        raise MmdbFormatError("the metadata is not a map")
    try:
        node_count = int(metadata["node_count"])
        record_size = int(metadata["record_size"])
    except (KeyError, TypeError, ValueError) as exc:
        raise MmdbFormatError(f"metadata without {exc}") from None
    if record_size not in (24, 28, 32):
        raise MmdbFormatError(f"unsupported record size {record_size}")
    tree_size = node_count * record_size // 4
    if tree_size + DATA_SEPARATOR > marker:
        raise MmdbFormatError("the search tree is larger than the file")
    import numpy as np

    raw = np.frombuffer(buffer, dtype=np.uint8, count=tree_size)
    left, right = _split(raw.reshape(node_count, record_size // 4).astype(np.uint32), record_size)
    return Database(
        metadata=metadata,
        node_count=node_count,
        record_size=record_size,
        left=left,
        right=right,
        buffer=buffer,
        data_start=tree_size + DATA_SEPARATOR,
    )


def _split(n: Records, record_size: int) -> tuple[Records, Records]:
    if record_size == 24:
        return (n[:, 0] << 16 | n[:, 1] << 8 | n[:, 2], n[:, 3] << 16 | n[:, 4] << 8 | n[:, 5])
    if record_size == 28:
        left = (n[:, 3] & 0xF0) << 20 | n[:, 0] << 16 | n[:, 1] << 8 | n[:, 2]
        right = (n[:, 3] & 0x0F) << 24 | n[:, 4] << 16 | n[:, 5] << 8 | n[:, 6]
        return left, right
    return (
        n[:, 0] << 24 | n[:, 1] << 16 | n[:, 2] << 8 | n[:, 3],
        n[:, 4] << 24 | n[:, 5] << 16 | n[:, 6] << 8 | n[:, 7],
    )


def _join(left: Records, right: Records, record_size: int) -> bytes:
    cols: list[Records]
    if record_size == 24:
        cols = [left >> 16, left >> 8, left, right >> 16, right >> 8, right]
    elif record_size == 28:
        middle = (left >> 24 & 0x0F) << 4 | (right >> 24 & 0x0F)
        cols = [left >> 16, left >> 8, left, middle, right >> 16, right >> 8, right]
    else:
        cols = [left >> 24, left >> 16, left >> 8, left]
        cols += [right >> 24, right >> 16, right >> 8, right]
    import numpy as np

    return np.stack([(c & 0xFF).astype(np.uint8) for c in cols], axis=1).tobytes()


def write(db: Database, left: Records, right: Records, data: bytes, **metadata: Any) -> bytes:
    """A file with ``db``'s tree shape, records ``left``/``right``, data section ``data`` and
    ``db``'s metadata updated with ``metadata``."""
    limit = 1 << db.record_size
    if db.node_count + DATA_SEPARATOR + len(data) >= limit:
        raise MmdbFormatError(
            f"a data section of {len(data)} bytes does not fit {db.record_size}-bit records"
        )
    return assemble(_join(left, right, db.record_size), data, {**db.metadata, **metadata})


def assemble(tree: bytes, data: bytes, metadata: Mapping[str, Any]) -> bytes:
    """A file of the search tree's bytes, the data section and the metadata."""
    return b"".join(
        (tree, bytes(DATA_SEPARATOR), data, METADATA_MARKER, encode(metadata, uints=METADATA_UINTS))
    )


# ---------------------------------------------------------------------------------- decode


class Decoder:
    """Reads data-section values of ``buffer`` whose data section starts at ``base``."""

    def __init__(self, buffer: bytes, base: int) -> None:
        self.buffer = buffer
        self.base = base
        self._shared: dict[int, Any] = {}

    def decode(self, offset: int) -> tuple[Any, int]:
        """The value at ``offset`` (from ``base``) and the offset after it."""
        buf = self.buffer
        pos = self.base + offset
        ctrl = buf[pos]
        pos += 1
        kind = ctrl >> 5
        if kind == 1:  # pointer
            target, after = self._pointer(pos - 1)
            if target not in self._shared:
                self._shared[target] = self.decode(target)[0]
            return self._shared[target], after - self.base
        if kind == 0:
            kind = 7 + buf[pos]
            pos += 1
        size = ctrl & 0x1F
        if size >= 29:
            extra = size - 28
            n = int.from_bytes(buf[pos : pos + extra], "big")
            size = (29, 285, 65821)[extra - 1] + n
            pos += extra
        end = pos + size
        value: Any
        if kind == 2:
            value = buf[pos:end].decode("utf-8")
        elif kind == 3:
            value = struct.unpack(">d", buf[pos : pos + 8])[0]
            end = pos + 8
        elif kind == 4:
            value = bytes(buf[pos:end])
        elif kind in (5, 6, 9, 10):
            value = int.from_bytes(buf[pos:end], "big")
        elif kind == 8:
            value = int.from_bytes(buf[pos:end], "big", signed=size == 4)
        elif kind == 7:
            out: dict[str, Any] = {}
            at = pos - self.base
            for _ in range(size):
                key, at = self.decode(at)
                out[key], at = self.decode(at)
            return out, at
        elif kind == 11:
            items = []
            at = pos - self.base
            for _ in range(size):
                item, at = self.decode(at)
                items.append(item)
            return items, at
        elif kind == 14:
            return bool(size), pos - self.base
        elif kind == 15:
            value = struct.unpack(">f", buf[pos : pos + 4])[0]
            end = pos + 4
        else:
            raise MmdbFormatError(f"unknown data type {kind} at offset {offset}")
        return value, end - self.base

    def decode_map(self, offset: int, keys: frozenset[str]) -> dict[str, Any]:
        """The entries of ``keys`` of the map at ``offset`` (through a pointer too); the
        other values are skipped without being decoded."""
        buf = self.buffer
        pos = self.base + offset
        ctrl = buf[pos]
        if ctrl >> 5 == 1:
            return self.decode_map(self._pointer(pos)[0], keys)
        if ctrl >> 5 != 7:
            value = self.decode(offset)[0]
            return value if isinstance(value, dict) else {}
        size, at = self._size(ctrl, pos + 1)
        at -= self.base
        out: dict[str, Any] = {}
        for _ in range(size):
            key, at = self.decode(at)
            if key in keys:
                out[key], at = self.decode(at)
            else:
                at = self.skip(at)
        return out

    def skip(self, offset: int) -> int:
        """The offset after the value at ``offset``, without decoding it."""
        buf = self.buffer
        pos = self.base + offset
        ctrl = buf[pos]
        kind = ctrl >> 5
        if kind == 1:
            return self._pointer(pos)[1] - self.base
        pos += 1
        if kind == 0:
            kind = 7 + buf[pos]
            pos += 1
        size, pos = self._size(ctrl, pos)
        at = pos - self.base
        if kind == 7:
            for _ in range(2 * size):
                at = self.skip(at)
            return at
        if kind == 11:
            for _ in range(size):
                at = self.skip(at)
            return at
        if kind == 3:
            return at + 8
        if kind == 15:
            return at + 4
        if kind == 14:
            return at
        return at + size

    def _size(self, ctrl: int, pos: int) -> tuple[int, int]:
        size = ctrl & 0x1F
        if size >= 29:
            extra = size - 28
            size = (29, 285, 65821)[extra - 1] + int.from_bytes(
                self.buffer[pos : pos + extra], "big"
            )
            pos += extra
        return size, pos

    def _pointer(self, pos: int) -> tuple[int, int]:
        """(target offset, position after) of the pointer at absolute ``pos``."""
        buf = self.buffer
        ctrl = buf[pos]
        pos += 1
        size = (ctrl >> 3) & 0x3
        low = ctrl & 0x7
        if size == 0:
            target = low << 8 | buf[pos]
        elif size == 1:
            target = (low << 16 | buf[pos] << 8 | buf[pos + 1]) + 2048
        elif size == 2:
            target = (low << 24 | int.from_bytes(buf[pos : pos + 3], "big")) + 526336
        else:
            target = int.from_bytes(buf[pos : pos + 4], "big")
        return target, pos + size + 1


# ---------------------------------------------------------------------------------- encode


def _control(kind: int, size: int) -> bytes:
    if size < 29:
        head, extra = size, b""
    elif size < 285:
        head, extra = 29, bytes([size - 29])
    elif size < 65821:
        head, extra = 30, (size - 285).to_bytes(2, "big")
    else:
        head, extra = 31, (size - 65821).to_bytes(3, "big")
    if kind <= 7:
        return bytes([kind << 5 | head]) + extra
    return bytes([head, kind - 7]) + extra


_DOUBLE = _control(3, 8)


def _uint(kind: int, value: int) -> bytes:
    payload = value.to_bytes((value.bit_length() + 7) // 8, "big") if value else b""
    return _control(kind, len(payload)) + payload


def map_header(size: int) -> bytes:
    """The start of a map of ``size`` pairs (its pairs follow, each key then value)."""
    return _control(7, size)


def double(value: float) -> bytes:
    """``value`` as a double (what ``encode`` writes for a float)."""
    return _DOUBLE + struct.pack(">d", value)


def encode(value: Any, *, uints: Mapping[str, int] | None = None) -> bytes:
    """``value`` in the data format: str, float (double), bool, int (uint32, or uint64 when
    larger; ``uints`` names map keys whose int is another type: 5 uint16, 6 uint32, 9
    uint64), bytes, Mapping (str keys) and Sequence."""
    if isinstance(value, str):
        data = value.encode("utf-8")
        return _control(2, len(data)) + data
    if isinstance(value, bool):
        return _control(14, int(value))
    if isinstance(value, float):
        return double(value)
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"negative integers are not supported: {value}")
        return _uint(6 if value < 1 << 32 else 9, value)
    if isinstance(value, bytes):
        return _control(4, len(value)) + value
    if isinstance(value, Mapping):
        parts = [map_header(len(value))]
        for key, item in value.items():
            parts.append(encode(str(key)))
            kind = (uints or {}).get(str(key))
            if kind is not None and isinstance(item, int) and not isinstance(item, bool):
                parts.append(_uint(kind, item))
            else:
                parts.append(encode(item, uints=uints))
        return b"".join(parts)
    if isinstance(value, Sequence):
        return _control(11, len(value)) + b"".join(encode(v, uints=uints) for v in value)
    raise TypeError(f"cannot encode {type(value).__name__} in a MaxMind DB")
