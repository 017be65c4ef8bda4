"""The outcome of one ownership check."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CheckResult:
    """Whether a check passed, and why in one sentence a user can act on.

    ``checked`` lists what was queried (name servers, URLs) in the order they were asked.
    """

    ok: bool
    reason: str
    checked: tuple[str, ...] = ()
