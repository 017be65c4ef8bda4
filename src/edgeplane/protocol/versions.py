"""The edge protocol's versions: which a side speaks, which it serves, what each one added.

Version 1 is the protocol before versions existed. Version 2 adds:

- the version itself: an agent says it in ``NodeRegister.protocol`` and in the
  ``Edgeplane-Protocol`` header of every call; the control plane answers every call of the
  edge protocol with the header too (its own version), and refuses a version it does not
  serve (a problem document whose ``protocols`` names the versions it does: ``{"min": 1,
  "max": 2}``), so an agent can fall back to one both speak;
- tolerance: an agent applies a snapshot holding fields it does not know, ignoring them, and
  says which (``Ack.ignored``, paths such as ``sites[].new_field``); the control plane accepts
  and ignores fields it does not know in what agents send;
- ``EdgeNode.protocol`` and ``EdgeNode.ignored_fields``: what the control plane knows of it.

Version 3 adds edge functions: ``NodeRegister.functions`` (the node can run them),
``EdgeNode.functions``, and ``Heartbeat.functions`` (what the node does with each function
version, ``FunctionReport``). A node of an older version, or one without the capability,
never gets functions in its snapshot.

The snapshot itself (``EdgeConfig``, ``EdgeManifest``, ``ManifestDelta``, the objects) is the
same in versions 1 and 2: one body serves nodes of either version, and a manifest saved by an
agent of version 2 is read by one of version 1 (an agent rolled back).

A field added later to what the control plane sends must be left out for nodes of a version
that does not know it where that version refuses unknown fields: version 1 agents refuse them
in the snapshot (its models forbid extra fields), so a field added to the snapshot must be
stripped for them for as long as ``MIN_PROTOCOL_VERSION`` is 1; agents of version 2 and later
ignore (and report) them. ``ADDED`` lists the fields added after version 1, per message, and
``for_protocol`` strips them; the agent uses the same table for what it sends a control plane
that speaks an older version.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

PROTOCOL_VERSION = 3  # the version this code speaks
MIN_PROTOCOL_VERSION = 1  # the oldest version it still serves
HEADER = "Edgeplane-Protocol"  # on every call and every answer of the edge protocol

# message (the model's name) -> field -> the version that added it
ADDED: Mapping[str, Mapping[str, int]] = {
    # dns_port and local_ports came after version 2 shipped; a control plane of version 2
    # ignores them (it ignores unknown fields), one of version 1 would refuse them.
    "NodeRegister": {"protocol": 2, "dns_port": 2, "local_ports": 2, "functions": 3},
    "Ack": {"ignored": 2},
    "EdgeNode": {"protocol": 2, "ignored_fields": 2, "functions": 3},
    "Heartbeat": {"functions": 3},
}


def served() -> dict[str, int]:
    """The versions this side serves, as a problem document names them."""
    return {"min": MIN_PROTOCOL_VERSION, "max": PROTOCOL_VERSION}


def refusal(version: int) -> str | None:
    """Why ``version`` is not served, or None when it is."""
    if version < MIN_PROTOCOL_VERSION:
        return (
            f"edge protocol version {version} is no longer served: this control plane serves "
            f"versions {MIN_PROTOCOL_VERSION} to {PROTOCOL_VERSION}; upgrade the agent"
        )
    if version > PROTOCOL_VERSION:
        return (
            f"edge protocol version {version} is newer than this control plane's: it serves "
            f"versions {MIN_PROTOCOL_VERSION} to {PROTOCOL_VERSION}; upgrade the control plane "
            "first (or let the agent speak an older version)"
        )
    return None


def parse_header(value: str | None) -> int:
    """The version an ``Edgeplane-Protocol`` header says; 1 when there is none (an agent of
    version 1 sends none). ``ValueError`` when it is not a version number."""
    if value is None:
        return 1
    text = value.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 6:
        raise ValueError(f"{HEADER}: {value[:40]!r} is not a version number")
    return int(text)


def common(their_min: int, their_max: int) -> int | None:
    """The newest version both this side and one serving ``their_min`` to ``their_max``
    speak; None when there is none."""
    best = min(PROTOCOL_VERSION, their_max)
    return best if best >= max(MIN_PROTOCOL_VERSION, their_min) else None


def for_protocol(doc: dict[str, Any], message: str, version: int) -> dict[str, Any]:
    """``doc`` (a ``message`` as JSON) without the fields added after ``version``."""
    added = ADDED.get(message)
    if not added:
        return doc
    return {k: v for k, v in doc.items() if added.get(k, 0) <= version}


def added_after(message: str, version: int) -> frozenset[str]:
    """The fields of ``message`` that ``version`` does not know."""
    return frozenset(k for k, v in ADDED.get(message, {}).items() if v > version)
