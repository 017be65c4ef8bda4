"""Small helpers for writing nginx configuration text safely."""

from __future__ import annotations

import hashlib
import re

_UNSAFE = re.compile(r"[\x00-\x1f\x7f$\\\"]")


def lit(value: str) -> str:
    """A quoted nginx string literal holding ``value`` (no variables, no escapes allowed)."""
    if _UNSAFE.search(value):
        raise ValueError(f"unsupported character in {value!r} (quotes, $, backslash, controls)")
    return f'"{value}"'


def safe_name(kind: str, value: str) -> str:
    """A stable nginx identifier for an arbitrary id (ids hold dots and dashes)."""
    return f"{kind}_{hashlib.sha1(value.encode()).hexdigest()[:12]}"


def seconds(value: float) -> str:
    """An nginx time in milliseconds (``1.5`` -> ``1500ms``)."""
    return f"{max(1, round(value * 1000))}ms"


def block(head: str, lines: list[str], indent: str = "") -> str:
    inner = "".join(f"{indent}    {line}\n" for line in lines)
    return f"{indent}{head} {{\n{inner}{indent}}}\n"


MAP_KEYWORDS = frozenset({"default", "hostnames", "include", "volatile"})


def map_key(value: str) -> str:
    """A literal map key; a key spelled like a map keyword (a project named ``default``)
    is escaped with a backslash, as nginx requires."""
    if value in MAP_KEYWORDS:
        return "\\" + value
    return lit(value)


def map_block(
    source: str,
    target: str,
    entries: list[tuple[str, str]],
    *,
    default: str = '""',
    hostnames: bool = False,
) -> str:
    """``map SOURCE $TARGET { ... }`` with literal keys; values are written as given."""
    lines = ["hostnames;"] if hostnames else []
    lines.append(f"default {default};")
    lines += [f"{map_key(key)} {value};" for key, value in entries]
    return block(f"map {source} {target}", lines)
