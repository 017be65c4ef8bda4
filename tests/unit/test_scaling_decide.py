"""The scaling decision: policies, stabilisation, bounds, cooldown and the schedule."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from edgeplane.model.scaling import ScheduledFloor, Step, StepPolicy, TargetTracking
from edgeplane.scaling import schedule
from edgeplane.scaling.decide import Recommendation, decide, recommend, stabilize

RPS = TargetTracking(metric="requests_per_second", target=50)


@pytest.mark.parametrize(
    ("value", "current", "size"),
    [
        (150, 1, 3),  # the load of three
        (52, 2, 2),  # within the tolerance (10 %)
        (56, 2, 3),  # past it: ceil(2 * 1.12)
        (20, 4, 2),  # ceil(4 * 0.4)
        (100, 2, 4),  # exactly twice: 4, not 5 (no float noise)
        (0, 3, 0),  # no load: as small as the bounds allow (decide clamps)
    ],
)
def test_target_tracking_sizes_by_the_ratio_to_the_target(
    value: float, current: int, size: int
) -> None:
    rec = recommend([RPS], {"requests_per_second": value}, current, 0.1)
    assert rec.size == size and rec.metric == "requests_per_second" and rec.value == value


def test_a_policy_without_a_value_or_without_instances_has_no_say() -> None:
    assert recommend([RPS], {}, 2, 0.1) == Recommendation(2)
    assert recommend([RPS], {"requests_per_second": 500}, 0, 0.1).size == 0


def test_step_policy_takes_the_largest_step_that_applies_and_the_largest_policy_wins() -> None:
    cpu = StepPolicy(metric="cpu_percent", steps=[
        Step(above=80, change=1), Step(above=95, change=3), Step(below=20, change=-1),
    ])  # fmt: skip
    assert recommend([cpu], {"cpu_percent": 85}, 2, 0.1).size == 3
    assert recommend([cpu], {"cpu_percent": 99}, 2, 0.1).size == 5
    assert recommend([cpu], {"cpu_percent": 10}, 2, 0.1).size == 1
    assert recommend([cpu], {"cpu_percent": 50}, 2, 0.1).size == 2
    both = recommend([cpu, RPS], {"cpu_percent": 85, "requests_per_second": 150}, 2, 0.1)
    assert both.size == 6 and both.metric == "requests_per_second"


def test_stabilisation_holds_the_largest_recent_recommendation_before_shrinking() -> None:
    history = [(100.0, 4), (150.0, 2), (190.0, 3)]
    # shrinking from 4: the largest of the last 60 s (3 at t=190) and now (1)
    assert stabilize(history, 200.0, 1, 4, 0, 60) == 3
    # the window past every higher one: down to now's
    assert stabilize(history, 400.0, 1, 4, 0, 60) == 1
    # growing, no scale-out window: at once
    assert stabilize(history, 200.0, 6, 4, 0, 60) == 6
    # growing with a window: the smallest of the window, never below desired
    assert stabilize(history, 200.0, 6, 1, 60, 60) == 2
    assert stabilize(history, 200.0, 6, 4, 60, 60) == 4


def _decide(**kw: object) -> object:
    args: dict[str, object] = dict(
        desired=2, recommendation=Recommendation(2), stabilized=2, floor=1, floor_reason=None,
        max_size=4, running=False, since_last_action_s=None, last_kind=None, cooldown_s=30,
    )  # fmt: skip
    args.update(kw)
    return decide(**args)  # type: ignore[arg-type]


def test_bounds_apply_at_once_and_clamp_what_the_policies_ask() -> None:
    d = _decide(desired=1, floor=3, floor_reason="morning peak", running=True,
                since_last_action_s=1.0)  # fmt: skip
    assert (d.desired, d.kind) == (3, "scale_out") and "morning peak" in d.trigger  # type: ignore[attr-defined]
    assert _decide(stabilized=9).desired == 4  # type: ignore[attr-defined]
    assert _decide(stabilized=0).desired == 1  # type: ignore[attr-defined]


def test_no_action_while_one_runs_nor_within_the_cooldown_but_demand_coming_back_is_served() -> (
    None
):
    d = _decide(stabilized=3, running=True)
    assert d.desired == 2 and d.held == "an action is running"  # type: ignore[attr-defined]
    d = _decide(stabilized=3, since_last_action_s=10.0, last_kind="scale_out")
    assert d.desired == 2 and d.held.startswith("cooldown")  # type: ignore[attr-defined]
    d = _decide(stabilized=1, since_last_action_s=10.0, last_kind="scale_out")
    assert d.desired == 2  # type: ignore[attr-defined]
    d = _decide(stabilized=3, since_last_action_s=10.0, last_kind="scale_in")
    assert (d.desired, d.kind) == (3, "scale_out")  # type: ignore[attr-defined]
    d = _decide(stabilized=3, since_last_action_s=31.0, last_kind="scale_out")
    assert (d.desired, d.kind) == (3, "scale_out")  # type: ignore[attr-defined]


def test_a_scheduled_floor_holds_from_its_cron_time_for_its_duration() -> None:
    peak = ScheduledFloor(cron="0 9 * * 1-5", duration_minutes=120, min_size=3, name="office")
    monday = datetime(2026, 12, 7, tzinfo=UTC)  # a Monday
    assert schedule.floor(1, [peak], monday.replace(hour=8, minute=59)) == (1, None)
    assert schedule.floor(1, [peak], monday.replace(hour=9)) == (3, "office")
    assert schedule.floor(1, [peak], monday.replace(hour=10, minute=59)) == (3, "office")
    assert schedule.floor(1, [peak], monday.replace(hour=11)) == (1, None)
    assert schedule.floor(1, [peak], datetime(2026, 12, 6, 9, 30, tzinfo=UTC)) == (1, None)
    assert schedule.floor(5, [peak], monday.replace(hour=9)) == (5, None)
    paris = ScheduledFloor(
        cron="0 9 * * *", duration_minutes=60, min_size=2, timezone="Europe/Paris"
    )
    assert schedule.floor(1, [paris], monday.replace(hour=8, minute=30)) == (
        2,
        "schedule 1 (0 9 * * *)",
    )
    assert schedule.floor(1, [paris], monday.replace(hour=9, minute=30)) == (1, None)


def test_schedule_entries_are_checked() -> None:
    bad = ScheduledFloor(cron="0 9 * *", duration_minutes=5, min_size=1)
    assert schedule.check(bad) is not None and schedule.check(bad)[0] == "cron"  # type: ignore[index]
    tz = ScheduledFloor(cron="0 9 * * *", duration_minutes=5, min_size=1, timezone="Mars/Base")
    assert schedule.check(tz)[0] == "timezone"  # type: ignore[index]
    assert (
        schedule.check(ScheduledFloor(cron="*/5 * * * *", duration_minutes=5, min_size=1)) is None
    )
