"""Per-client limits at the edge (L7 DDoS protection) and the "under attack" switch.

A project's ``EdgeSecurity.limits`` says how much one client address may take from the edge:
requests in progress at once, how long it may take to send its request header and body and to
read the response, how long an idle keep-alive connection stays open, how large its request
header and body may be. Every field is optional: ``None`` leaves the edge's default (nginx's:
60 s timeouts; the edge's 65 s keep-alive and 100 MiB bodies; 32 KiB of header).

``EdgeSecurity.under_attack`` tightens all of them at once to the ``UNDER_ATTACK`` values (a
value of the project's own that is already tighter stays), the request rate limit included
(``UNDER_ATTACK_RATE``): ``effective`` computes what the edge applies.

What nginx can apply per project and what it applies per node (its shared ``server`` reads the
timeouts before it knows the site) is in ``edgeplane.node.nginx.render_limits``.
"""

from __future__ import annotations

from pydantic import Field

from edgeplane.model.common import Input, Int

KIB = 1024
MIB = 1024 * KIB
# nginx's most header, in all (4 buffers of 8 KiB): a site's limit can only be lower
DEFAULT_HEADER_BYTES = 32 * KIB


class ClientLimits(Input):
    """What one client address may take from the edge (``None``: the edge's default)."""

    max_connections: Int | None = Field(
        None,
        ge=1,
        le=100_000,
        description="requests in progress at once per client address (503 above; HTTP/2 "
        "streams count one each)",
    )
    header_timeout_s: Int | None = Field(
        None, ge=1, le=300, description="seconds to send the whole request header (408 after)"
    )
    body_timeout_s: Int | None = Field(
        None, ge=1, le=300, description="seconds between two reads of the request body"
    )
    send_timeout_s: Int | None = Field(
        None, ge=1, le=300, description="seconds between two writes of the response"
    )
    keepalive_timeout_s: Int | None = Field(
        None, ge=0, le=300, description="seconds an idle keep-alive connection stays open"
    )
    max_header_bytes: Int | None = Field(
        None,
        ge=KIB,
        le=DEFAULT_HEADER_BYTES,
        description="request line and headers, bytes (431 above; no header line over 8 KiB)",
    )
    max_body_bytes: Int | None = Field(
        None, ge=1, le=1024 * MIB, description="request body, bytes (413 above)"
    )


# What "under attack" applies (a project's own tighter value stays). Chosen so that a browser
# still loads a page: 6 connections per host over HTTP/1.1, tens of streams over HTTP/2, a
# header and body sent in well under a second on a slow mobile link.
UNDER_ATTACK = ClientLimits(
    max_connections=20,
    header_timeout_s=5,
    body_timeout_s=10,
    send_timeout_s=10,
    keepalive_timeout_s=10,
    max_header_bytes=16 * KIB,
    max_body_bytes=10 * MIB,
)
UNDER_ATTACK_RATE = (20, 40)  # requests per second per client address, burst


def _tightest(own: int | None, attack: int | None) -> int | None:
    if own is None:
        return attack
    if attack is None:
        return own
    return min(own, attack)


def effective(limits: ClientLimits, under_attack: bool) -> ClientLimits:
    """The limits the edge applies: the project's, tightened to ``UNDER_ATTACK`` under attack."""
    if not under_attack:
        return limits
    values = {
        name: _tightest(getattr(limits, name), getattr(UNDER_ATTACK, name))
        for name in ClientLimits.model_fields
    }
    return ClientLimits(**values)


def effective_rate(rate: tuple[int, int] | None, under_attack: bool) -> tuple[int, int] | None:
    """The (rate, burst) the edge applies: the project's, tightened under attack."""
    if not under_attack:
        return rate
    if rate is None:
        return UNDER_ATTACK_RATE
    return min(rate[0], UNDER_ATTACK_RATE[0]), min(rate[1], UNDER_ATTACK_RATE[1])


__all__ = [
    "DEFAULT_HEADER_BYTES",
    "UNDER_ATTACK",
    "UNDER_ATTACK_RATE",
    "ClientLimits",
    "effective",
    "effective_rate",
]
