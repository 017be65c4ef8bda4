"""The challenge cookie of the edge's bot protection, in Python: the same algorithm as the
edge's script (``bot_data/bots.js``), for tests, tools and the documentation.

``c.<expiry>.<sig>`` after a cookie challenge, ``j.<expiry>.<sig>.<nonce>`` after a JavaScript
one; ``sig`` is the first 32 hex digits of HMAC-SHA256(site key, ``kind|expiry|address|user
agent``), the key used as the text of its hex digits (as njs takes a string key); for ``j``,
SHA-256 of the whole value starts with ``difficulty`` zero bits.
"""

from __future__ import annotations

import hashlib
import hmac

COOKIE = "edgeplane_bot"


def signature(key: str, kind: str, expiry: int, address: str, user_agent: str) -> str:
    text = f"{kind}|{expiry}|{address}|{user_agent}"
    return hmac.new(key.encode(), text.encode(), hashlib.sha256).hexdigest()[:32]


def zero_bits(hex_digest: str, bits: int) -> bool:
    """The first ``bits`` bits of a hex digest are zero."""
    value = int(hex_digest[:8], 16)
    return bits == 0 or value >> (32 - bits) == 0


def solve(challenge: str, difficulty: int) -> str:
    """The cookie value a browser computes from the challenge page's ``j.<expiry>.<sig>``."""
    nonce = 0
    while True:
        value = f"{challenge}.{nonce}"
        if zero_bits(hashlib.sha256(value.encode()).hexdigest(), difficulty):
            return value
        nonce += 1


def cookie_value(key: str, expiry: int, address: str, user_agent: str) -> str:
    """A cookie challenge's cookie (what the edge sets on its redirect)."""
    return f"c.{expiry}.{signature(key, 'c', expiry, address, user_agent)}"


def check(
    key: str, value: str, *, kind: str, now: int, ttl_s: int, address: str, user_agent: str,
    difficulty: int = 0,
) -> bool:  # fmt: skip
    """What the edge's ``passed`` decides of a cookie value."""
    parts = value.split(".")
    if len(value) > 200 or parts[0] != kind or len(parts) != (3 if kind == "c" else 4):
        return False
    if not (parts[1].isascii() and parts[1].isdigit() and len(parts[1]) <= 12):
        return False
    expiry = int(parts[1])
    if not now < expiry <= now + ttl_s + 60:
        return False
    if not hmac.compare_digest(parts[2], signature(key, kind, expiry, address, user_agent)):
        return False
    if kind == "j":
        if not (parts[3].isascii() and parts[3].isdigit() and len(parts[3]) <= 16):
            return False
        return zero_bits(hashlib.sha256(value.encode()).hexdigest(), difficulty)
    return True
