"""A DR config's cycle (pure): from the primary's health and the config's modes, what to do.

States (``DRStateRow.status``, with ``active``, the side that serves)::

    normal (primary) --down for detect_s--> failed_over (backup)        [automatic]
                                        \\-> failover_pending (primary) [confirmed]
    failover_pending --POST failover--> failed_over
                     --up for detect_s--> normal (recovered, nothing moved)
    failed_over --up for failback_after_s--> normal (primary)           [automatic]
                                         \\-> failback_pending (backup)  [confirmed]
    failback_pending --POST failback--> normal
                     --down for detect_s--> failed_over (the failback is cancelled)
    drill (backup): a drill holds the config (``edgeplane.dr.drill``); the monitor waits.

Hysteresis: the primary's health must hold for the whole period (``health_since`` restarts at
every change), so a flapping primary neither fails over nor back. ``unknown`` holds nothing.
No failover to a backup that is down itself (it would serve no better): the monitor waits.
A failover an operator forced (``manual``) is never failed back by itself: it waits for a
failback (forced or confirmed). An operator may fail over or back at any time; a request that
makes no sense in the current state is refused with the reason (``manual``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

Action = Literal["failover", "failback"]
SWITCHES = frozenset({"switched", "failback", "restored"})  # events that move traffic


@dataclass(frozen=True)
class View:
    """A DR config's state as stored (``DRStateRow``) and what its open episode holds."""

    status: str = "normal"
    active: str = "primary"
    health: str = "unknown"  # the primary's, as last seen
    health_since: datetime | None = None
    episode: str | None = None
    manual: bool = False  # the open episode's failover was forced by an operator
    backup_health: str = "unknown"  # the backup's, now (not stored)


@dataclass(frozen=True)
class Policy:
    failover_mode: str  # automatic / confirmed
    failback_mode: str
    detect_s: float
    failback_after_s: float


@dataclass(frozen=True)
class Transition:
    """A step of the cycle: the new status and side, the events it writes in order, whether
    it opens a new episode or closes the open one at once (a failback closes its episode once
    every node serves it)."""

    name: str
    status: str
    active: str
    events: tuple[str, ...]
    message: str
    opens: bool = False
    closes: bool = False
    manual: bool = False

    @property
    def moves(self) -> bool:
        """Whether traffic changes side (a new revision for every edge node)."""
        return any(e in SWITCHES for e in self.events)


def observe(view: View, health: str, since: datetime | None, now: datetime) -> View:
    """``view`` with the primary's health as just seen; ``since``: when the evidence says it
    became so (kept when it is no earlier than the previous change and not in the future)."""
    if health == view.health:
        return view
    after_last = since is not None and (view.health_since is None or since >= view.health_since)
    start = since if since is not None and after_last and since <= now else now
    return replace(view, health=health, health_since=start)


def held_s(view: View, now: datetime) -> float:
    """How long the primary's health has been what it is."""
    if view.health_since is None:
        return 0.0
    return max(0.0, (now - view.health_since).total_seconds())


def decide(view: View, policy: Policy, now: datetime) -> Transition | None:
    """The step the monitor takes now, if any."""
    held = held_s(view, now)
    down = view.health == "down"
    up = view.health == "up"
    if view.status == "normal":
        if down and held >= policy.detect_s and view.backup_health != "down":
            if policy.failover_mode == "automatic":
                return Transition(
                    "failover",
                    "failed_over",
                    "backup",
                    ("detected", "switched"),
                    f"the primary has been down for {held:.1f} s: traffic moves to the backup",
                    opens=True,
                )
            return Transition(
                "failover_pending",
                "failover_pending",
                "primary",
                ("detected", "pending"),
                f"the primary has been down for {held:.1f} s: the failover waits for an "
                "operator's confirmation",
                opens=True,
            )
    elif view.status == "failover_pending":
        if up and held >= policy.detect_s:
            return Transition(
                "recovered",
                "normal",
                "primary",
                ("recovered",),
                f"the primary recovered before the failover was confirmed (up {held:.1f} s)",
                closes=True,
            )
    elif view.status == "failed_over":
        if not view.manual and up and held >= policy.failback_after_s:
            if policy.failback_mode == "automatic":
                return Transition(
                    "failback",
                    "normal",
                    "primary",
                    ("recovered", "failback"),
                    f"the primary has been healthy for {held:.1f} s: traffic returns to it",
                )
            return Transition(
                "failback_pending",
                "failback_pending",
                "backup",
                ("recovered", "failback_pending"),
                f"the primary has been healthy for {held:.1f} s: the failback waits for an "
                "operator's confirmation",
            )
    elif view.status == "failback_pending" and down and held >= policy.detect_s:
        return Transition(
            "failback_cancelled",
            "failed_over",
            "backup",
            ("cancelled",),
            f"the primary is down again ({held:.1f} s): the pending failback is cancelled",
        )
    return None


def manual(view: View, action: Action) -> Transition | str:
    """An operator's failover or failback: the transition, or why it makes no sense now."""
    if view.status == "drill":
        return "a drill is running (it restores the primary when it ends)"
    if action == "failover":
        if view.status == "failover_pending":
            return Transition(
                "failover_confirmed",
                "failed_over",
                "backup",
                ("confirmed", "switched"),
                "the failover was confirmed: traffic moves to the backup",
            )
        if view.status == "normal":
            return Transition(
                "failover_forced",
                "failed_over",
                "backup",
                ("forced", "switched"),
                "failover forced by an operator: traffic moves to the backup (no automatic "
                "failback)",
                opens=True,
                manual=True,
            )
        return "traffic is on the backup data center already (status " + view.status + ")"
    if view.status == "failback_pending":
        return Transition(
            "failback_confirmed",
            "normal",
            "primary",
            ("confirmed", "failback"),
            "the failback was confirmed: traffic returns to the primary",
        )
    if view.status == "failed_over":
        return Transition(
            "failback_forced",
            "normal",
            "primary",
            ("forced", "failback"),
            "failback forced by an operator: traffic returns to the primary",
        )
    if view.status == "failover_pending":
        return (
            "traffic is on the primary data center already: the pending failover waits for a "
            "confirmation (POST .../failover), or ends by itself when the primary recovers"
        )
    return "traffic is on the primary data center already (status " + view.status + ")"


def drill_start(view: View) -> Transition | str:
    """A drill takes the primary out (drained) and the backup in; or why it cannot now."""
    if view.status == "drill":
        return "a drill is running already"
    if view.status != "normal":
        return f"a failover is open (status {view.status}): a drill waits until it is over"
    if view.health == "down":
        return "the primary is down: this is no time for a drill"
    return Transition(
        "drill_started",
        "drill",
        "backup",
        ("drill", "switched"),
        "drill: the primary is drained, traffic moves to the backup",
    )


DRILL_END = Transition(
    "drill_restored",
    "normal",
    "primary",
    ("restored",),
    "drill over: traffic returns to the primary",
)
