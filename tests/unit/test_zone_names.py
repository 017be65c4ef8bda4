"""Zones by canonical name, kept up to date by difference, equal those spelled afresh."""

from __future__ import annotations

import random

from edgeplane.node.powerdns.plan import zone_name
from edgeplane.node.powerdns.zone_names import by_name


def test_by_name_from_the_last_equals_by_name_from_nothing() -> None:
    rng = random.Random(5)
    pool = [f"z{i}.example." for i in range(40)] + [f"Z{i}.Example" for i in range(5)]
    zones: dict[str, str] = {}
    last = None
    for step in range(400):
        name = rng.choice(pool)
        if name in zones and rng.random() < 0.4:
            del zones[name]
        else:
            zones[name] = f"h{rng.randrange(3)}"
        named, changed = by_name(zones, zone_name, last)
        fresh, _ = by_name(zones, zone_name, None)
        if len(fresh.zones) < len(zones):  # two names of one zone: told, not merged
            assert len(named.zones) < len(zones), step
            continue
        assert named.zones == fresh.zones and named.given == zones, step
        if changed is not None:
            assert last is not None
            assert set(changed) == {n for n, h in zones.items() if last.given.get(n) != h}
        last = named
