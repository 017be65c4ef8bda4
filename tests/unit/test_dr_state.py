"""A DR config's cycle (``edgeplane.dr.state``): failover and failback with their modes,
hysteresis, manual steps and their refusals; and what each state does to a load balancer's
backends in the snapshot (``edgeplane.snapshot.dr``)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from edgeplane.dr import state as cycle
from edgeplane.protocol.config import NodeSpec
from edgeplane.snapshot.build import BackendState, DesiredState, LoadBalancerState, snapshot
from edgeplane.snapshot.dr import DRRule, Placement, backend_host, index_addresses, pool_effects

T0 = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
AUTO = cycle.Policy("automatic", "automatic", detect_s=3.0, failback_after_s=60.0)
CONFIRMED = cycle.Policy("confirmed", "confirmed", detect_s=3.0, failback_after_s=60.0)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def seen(view: cycle.View, health: str, t: float, since: float | None = None) -> cycle.View:
    return cycle.observe(view, health, at(since) if since is not None else None, at(t))


def run(
    view: cycle.View, policy: cycle.Policy, timeline: list[tuple[float, str]]
) -> tuple[cycle.View, list[tuple[float, str]]]:
    """Feed a health timeline (time, health) to the monitor's decisions, applying each
    transition; the final view and the transitions taken (time, name)."""
    taken = []
    for t, health in timeline:
        view = seen(view, health, t)
        step = cycle.decide(view, policy, at(t))
        if step is not None:
            taken.append((t, step.name))
            view = replace(view, status=step.status, active=step.active)
    return view, taken


def test_automatic_failover_after_detect_then_failback_after_the_quiet_period() -> None:
    timeline = [(float(t), "up") for t in range(3)]
    timeline += [(3 + t * 0.5, "down") for t in range(10)]  # down from t=3
    timeline += [(10 + t, "up") for t in range(70)]  # back at t=10
    view, taken = run(cycle.View(), AUTO, timeline)
    assert taken == [(6.0, "failover"), (70.0, "failback")]
    assert (view.status, view.active) == ("normal", "primary")


def test_a_flapping_primary_neither_fails_over_nor_back() -> None:
    flaps = [(t * 1.0, "down" if t % 3 else "up") for t in range(30)]  # never down 3 s
    _, taken = run(cycle.View(), AUTO, flaps)
    assert taken == []
    failed = cycle.View(status="failed_over", active="backup", health="down", health_since=T0)
    flaps = [(t * 10.0, "up" if t % 2 else "down") for t in range(20)]  # never up 60 s
    _, taken = run(failed, AUTO, flaps)
    assert taken == []


def test_unknown_health_moves_nothing() -> None:
    view = cycle.View(status="normal", health="down", health_since=T0)
    view = seen(view, "unknown", 1)
    assert cycle.decide(view, AUTO, at(100)) is None
    failed = cycle.View(status="failed_over", active="backup", health="unknown", health_since=T0)
    assert cycle.decide(failed, AUTO, at(1000)) is None


def test_confirmed_modes_wait_for_the_operator() -> None:
    view, taken = run(cycle.View(), CONFIRMED, [(0, "up"), (1, "down"), (4.5, "down")])
    assert taken == [(4.5, "failover_pending")]
    assert (view.status, view.active) == ("failover_pending", "primary")
    step = cycle.manual(view, "failover")
    assert isinstance(step, cycle.Transition)
    assert step.events == ("confirmed", "switched") and step.moves and not step.manual
    view = replace(view, status=step.status, active=step.active)
    view, taken = run(view, CONFIRMED, [(10, "up"), (71, "up")])
    assert taken == [(71, "failback_pending")]
    assert (view.status, view.active) == ("failback_pending", "backup")
    # the primary fails again before the failback is confirmed: cancelled
    view, taken = run(view, CONFIRMED, [(80, "down"), (83.5, "down")])
    assert taken == [(83.5, "failback_cancelled")] and view.status == "failed_over"


def test_a_pending_failover_ends_when_the_primary_recovers() -> None:
    view = cycle.View(status="failover_pending", health="down", health_since=T0)
    view, taken = run(view, CONFIRMED, [(10, "up"), (12, "up"), (13, "up")])
    assert taken == [(13, "recovered")]
    step = cycle.decide(replace(view, status="failover_pending"), CONFIRMED, at(13))
    assert step is not None and step.closes and not step.moves


def test_detection_counts_from_when_the_edge_saw_the_primary_go_down() -> None:
    view = seen(cycle.View(health="up", health_since=T0), "down", 10, since=8)
    assert view.health_since == at(8)
    step = cycle.decide(view, AUTO, at(11))
    assert step is not None and step.name == "failover" and step.opens
    # evidence older than the last change, or from the future, is not trusted
    assert seen(
        cycle.View(health="up", health_since=at(5)), "down", 10, since=4
    ).health_since == at(10)
    assert seen(cycle.View(health="up", health_since=T0), "down", 10, since=20).health_since == at(
        10
    )


def test_a_forced_failover_is_not_failed_back_by_the_monitor() -> None:
    forced = cycle.manual(cycle.View(health="up", health_since=T0), "failover")
    assert isinstance(forced, cycle.Transition) and forced.manual and forced.opens
    assert forced.events == ("forced", "switched")
    held = cycle.View(
        status="failed_over", active="backup", health="up", health_since=T0, manual=True
    )
    assert cycle.decide(held, AUTO, at(3600)) is None
    back = cycle.manual(held, "failback")
    assert isinstance(back, cycle.Transition) and back.events == ("forced", "failback")


@pytest.mark.parametrize(
    ("status", "action", "why"),
    [
        ("failed_over", "failover", "on the backup data center already"),
        ("failback_pending", "failover", "on the backup data center already"),
        ("normal", "failback", "on the primary data center already"),
        ("failover_pending", "failback", "pending failover waits for a confirmation"),
        ("drill", "failover", "a drill is running"),
        ("drill", "failback", "a drill is running"),
    ],
)
def test_manual_steps_that_make_no_sense_say_why(status: str, action: str, why: str) -> None:
    answer = cycle.manual(cycle.View(status=status), action)  # type: ignore[arg-type]
    assert isinstance(answer, str) and why in answer


def test_drills_start_only_from_a_quiet_normal_state() -> None:
    ok = cycle.drill_start(cycle.View(health="up"))
    assert isinstance(ok, cycle.Transition) and ok.status == "drill" and ok.active == "backup"
    assert "drill is running" in str(cycle.drill_start(cycle.View(status="drill")))
    assert "failover is open" in str(cycle.drill_start(cycle.View(status="failed_over")))
    assert "failover is open" in str(cycle.drill_start(cycle.View(status="failover_pending")))
    assert "primary is down" in str(cycle.drill_start(cycle.View(health="down")))
    assert cycle.DRILL_END.moves and cycle.DRILL_END.status == "normal"


# The snapshot: which side serves ---------------------------------------------------------

NODE = NodeSpec(id="node-1", name="edge-a", region="eu-central")
SERVERS = {("p", "a1"): "10.0.1.1", ("p", "a2"): "10.0.1.2", ("p", "b1"): "10.0.2.1"}
DCS = {("p", "a1"): "dc-a", ("p", "a2"): "dc-a", ("p", "b1"): "dc-b"}


def dr_state(mode: str, active: str = "primary", status: str = "normal") -> DesiredState:
    rule = DRRule("p", "dr-1", "dc-a", "dc-b", failover_mode=mode, active=active, status=status)
    by_address = index_addresses((p, s, a) for (p, s), a in SERVERS.items())
    lb = LoadBalancerState(
        project="p",
        id="web",
        algorithm="round_robin",
        backends=(
            BackendState("a1", port=8080),  # a server by id
            BackendState("10.0.1.2:8080", weight=3),  # a server by its address
            BackendState("http://10.0.2.1:80"),  # the backup's server, by URL
            BackendState("10.9.9.9:80"),  # no server: as configured, always
        ),
    )
    return DesiredState(
        domains={"p": ("p.test",)},
        load_balancers={("p", "web"): lb},
        servers=SERVERS,
        placement=Placement(data_centers=DCS, by_address=by_address, rules={"p": (rule,)}),
    )


def pool_of(state: DesiredState) -> dict[str, tuple[bool, str]]:
    (pool,) = snapshot(state, NODE, 1).pools
    return {b.key: (b.backup, b.state) for b in pool.backends}


def test_automatic_mode_keeps_the_backup_as_nginx_backups_until_it_fails_over() -> None:
    assert pool_of(dr_state("automatic")) == {
        "a1:8080": (False, "active"),
        "10.0.1.2:8080": (False, "active"),
        "http://10.0.2.1:80": (True, "active"),
        "10.9.9.9:80": (False, "active"),
    }


def test_confirmed_mode_keeps_the_backup_out_of_rotation_until_confirmed() -> None:
    pending = pool_of(dr_state("confirmed", status="failover_pending"))
    assert pending["http://10.0.2.1:80"] == (False, "draining")
    assert pending["a1:8080"] == (False, "active")


@pytest.mark.parametrize("status", ["failed_over", "failback_pending", "drill"])
def test_failed_over_the_primary_is_drained_and_the_backup_serves(status: str) -> None:
    for mode in ("automatic", "confirmed"):
        got = pool_of(dr_state(mode, active="backup", status=status))
        assert got == {
            "a1:8080": (False, "draining"),
            "10.0.1.2:8080": (False, "draining"),
            "http://10.0.2.1:80": (False, "active"),
            "10.9.9.9:80": (False, "active"),
        }, (mode, got)


def test_a_pool_without_a_backup_side_is_left_as_configured() -> None:
    placement = dr_state("automatic", active="backup", status="failed_over").placement
    effects = pool_effects(placement, "p", ["a1", "10.9.9.9:80"])
    assert effects == [("keep", ()), ("keep", ())]
    assert pool_effects(placement, "other", ["a1"]) == [("keep", ())]


def test_two_configs_on_one_data_center_the_strongest_effect_wins() -> None:
    # dc-b is the backup of dr-1 (automatic, normal: backup) and the primary of dr-2 (failed
    # over to dc-c: drained): drained wins.
    rules = (
        DRRule("p", "dr-1", "dc-a", "dc-b"),
        DRRule("p", "dr-2", "dc-b", "dc-c", active="backup", status="failed_over"),
    )
    placement = Placement(
        data_centers={("p", "a"): "dc-a", ("p", "b"): "dc-b", ("p", "c"): "dc-c"},
        rules={"p": rules},
    )
    effects = pool_effects(placement, "p", ["a", "b", "c"])
    assert effects == [
        ("keep", ("dr-1",)),
        ("drain", ("dr-1", "dr-2")),
        ("promote", ("dr-2",)),
    ]


def test_backend_addresses_name_servers_by_their_host() -> None:
    assert backend_host("10.0.0.1:8080") == "10.0.0.1"
    assert backend_host("http://Web.Example") == "web.example"
    assert backend_host("https://[::1]:8443") == backend_host("[0:0::1]:80") == "::1"
    assert backend_host("srv-1") is None and backend_host("a:b") is None
    index = index_addresses(
        [
            ("p", "a", "10.0.0.1"),
            ("p", "b", "WEB.example"),
            ("p", "c", "10.0.0.3"),
            ("p", "d", "10.0.0.3"),
            ("q", "e", "10.0.0.1"),
            ("p", "f", None),
        ]
    )
    # two servers of p share 10.0.0.3: a backend there names neither
    assert index == {("p", "10.0.0.1"): "a", ("p", "web.example"): "b", ("q", "10.0.0.1"): "e"}


def test_no_failover_to_a_backup_that_is_down_too() -> None:
    view = cycle.View(health="down", health_since=T0, backup_health="down")
    assert cycle.decide(view, AUTO, at(100)) is None
    assert cycle.decide(replace(view, backup_health="unknown"), AUTO, at(100)) is not None
