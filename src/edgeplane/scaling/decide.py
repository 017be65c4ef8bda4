"""What size a group should be: pure functions, no I/O and no clock (``now`` is given).

1. **Each policy recommends a size** from its metric (``recommend``). Target tracking, as
   Kubernetes' HPA: ``ceil(current * value / target)``, no change while ``value / target`` is
   within the tolerance of 1. Step: the size plus the largest change among the steps whose
   bound the value passes. The largest recommendation of all policies wins (a policy without
   a value, such as requests per instance while no instance serves, has no say).
2. **Stabilisation** (``stabilize``): the group grows to the smallest recommendation of the
   scale-out window and shrinks to the largest of the scale-in window, so a dip shorter than
   the window never removes an instance (and a spike shorter than its window, when one is
   set, never adds one).
3. **Bounds and cooldown** (``decide``): the size stays within the floor (``min_size``, or a
   scheduled floor) and ``max_size``, which apply at once. Otherwise no action starts while
   one runs, nor within ``cooldown_s`` of the last one's end, unless it grows a group that
   last shrank (demand that comes back is served at once).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from edgeplane.model.scaling import StepPolicy, TargetTracking

Kind = Literal["scale_out", "scale_in"]


@dataclass(frozen=True)
class Recommendation:
    size: int
    metric: str | None = None
    value: float | None = None
    reason: str = "no metric has a value: the size stays"


def _target(policy: TargetTracking, value: float, current: int, tolerance: float) -> int:
    ratio = value / policy.target
    if abs(ratio - 1) <= tolerance:
        return current
    # a hair under a whole number is that number (float noise: 2.0000000001 is 2)
    return max(0, math.ceil(current * ratio - 1e-9))


def _step(policy: StepPolicy, value: float, current: int) -> int:
    up = [s.change for s in policy.steps if s.above is not None and value > s.above]
    down = [s.change for s in policy.steps if s.below is not None and value < s.below]
    if up and max(up) > 0:
        return current + max(up)
    if down:
        return max(0, current + min(down))
    return current


def recommend(
    policies: Sequence[TargetTracking | StepPolicy],
    metrics: Mapping[str, float | None],
    current: int,
    tolerance: float,
) -> Recommendation:
    """The policies' size for ``current`` serving instances and the metrics now."""
    best: Recommendation | None = None
    for policy in policies:
        value = metrics.get(policy.metric)
        if value is None or current == 0:
            continue
        if isinstance(policy, TargetTracking):
            size = _target(policy, value, current, tolerance)
            reason = f"{policy.metric} {value:g} against a target of {policy.target:g}"
        else:
            size = _step(policy, value, current)
            reason = f"{policy.metric} {value:g} (step policy)"
        if best is None or size > best.size:
            best = Recommendation(size, policy.metric, value, reason)
    return best or Recommendation(current)


def stabilize(
    history: Sequence[tuple[float, int]],
    now: float,
    size: int,
    desired: int,
    out_window_s: float,
    in_window_s: float,
) -> int:
    """The size to move ``desired`` to, given the recommendations of the past (``history``:
    (time, size), any order) and the one of now."""
    if size > desired:
        seen = [s for t, s in history if t >= now - out_window_s and t <= now]
        return max(desired, min([*seen, size]))
    if size < desired:
        seen = [s for t, s in history if t >= now - in_window_s and t <= now]
        return min(desired, max([*seen, size]))
    return desired


@dataclass(frozen=True)
class Decision:
    desired: int
    kind: Kind | None  # None: no change
    trigger: str
    metric: str | None = None
    value: float | None = None
    held: str | None = None  # why a change the metrics ask for waits (cooldown, running)


def decide(
    *,
    desired: int,
    recommendation: Recommendation,
    stabilized: int,
    floor: int,
    floor_reason: str | None,
    max_size: int,
    running: bool,
    since_last_action_s: float | None,
    last_kind: Kind | None,
    cooldown_s: float,
) -> Decision:
    """The group's next desired size and why."""
    if desired < floor:
        why = f"below its minimum of {floor}" + (f" ({floor_reason})" if floor_reason else "")
        return Decision(floor, "scale_out", why)
    if desired > max_size:
        return Decision(max_size, "scale_in", f"above its maximum of {max_size}")
    target = min(max(stabilized, floor), max_size)
    if target == desired:
        return Decision(desired, None, recommendation.reason)
    kind: Kind = "scale_out" if target > desired else "scale_in"
    rec = recommendation
    if running:
        return Decision(desired, None, rec.reason, rec.metric, rec.value, "an action is running")
    cooling = since_last_action_s is not None and since_last_action_s < cooldown_s
    if cooling and not (kind == "scale_out" and last_kind == "scale_in"):
        left = cooldown_s - (since_last_action_s or 0)
        return Decision(
            desired, None, rec.reason, rec.metric, rec.value, f"cooldown ({left:.0f} s)"
        )
    return Decision(target, kind, rec.reason, rec.metric, rec.value)
