"""A manifest's delta (``protocol.delta``): applied to the manifest it was made from, it gives
the new one exactly; applied to another, it is refused."""

from __future__ import annotations

import random

import pytest

from edgeplane.protocol.config import EdgeManifest, NodeSpec, SiteSpec, VerificationSpec
from edgeplane.protocol.delta import Changes, ManifestDelta, changes, object_changes, patched

NODE = NodeSpec(id="n1", name="n1", region="eu-central")


def test_changes_then_patched_give_the_new_sequence() -> None:
    rng = random.Random(3)
    for _ in range(500):
        universe = list(range(rng.randint(0, 40)))
        old = sorted(rng.sample(universe, rng.randint(0, len(universe))))
        new = sorted(rng.sample(universe, rng.randint(0, len(universe))))
        change = changes(old, new)
        assert patched(old, change) == tuple(new)
        assert len(change.removed) == len(set(old) - set(new))
        assert len(change.added) == len(set(new) - set(old))
        # Objects: some the very same in both, some equal copies, some new.
        made = {x: (x, "item") for x in universe}
        old_objects = [made[x] for x in old]
        new_objects = [made[x] if rng.random() < 0.5 else (x, "item") for x in new]
        change = object_changes(old_objects, new_objects)
        assert patched(old_objects, change) == tuple(new_objects)
        assert len(change.added) == len(set(new) - set(old))


def test_a_change_that_does_not_fit_is_refused() -> None:
    with pytest.raises(ValueError, match="outside"):
        patched([1, 2], Changes(removed=(2,)))
    with pytest.raises(ValueError, match="beyond"):
        patched([1, 2], Changes(added=((5, 9),)))
    with pytest.raises(ValueError, match="ascending"):
        patched([1, 2], Changes(added=((1, 7), (0, 8))))


def _manifest(revision: int, domains: list[str]) -> EdgeManifest:
    return EdgeManifest(
        revision=revision,
        hash=f"{revision:016x}",
        http_hash=f"{revision:016x}",
        node=NODE,
        sites=(SiteSpec(id="default", domains=tuple(domains), pool=None),),
        certs=tuple(f"{i:064x}" for i, _ in enumerate(domains)),
        zones={f"{d}.": f"{len(d):064x}" for d in domains},
        verifications=tuple(VerificationSpec(domain=d, token=f"t-{d}") for d in domains),
    )


def test_a_delta_makes_the_new_manifest_of_the_old_and_of_no_other() -> None:
    old = _manifest(4, [f"d{i}.test" for i in range(0, 100, 2)])
    new = _manifest(7, [f"d{i}.test" for i in range(0, 100, 3)])
    delta = ManifestDelta.model_validate_json(ManifestDelta.between(old, new).model_dump_json())
    assert delta.apply(old) == new
    unchanged = old.sites[0]
    same = _manifest(9, list(unchanged.domains))
    assert ManifestDelta.between(old, same).apply(old).sites[0] is unchanged  # reused, not copied
    with pytest.raises(ValueError, match="revision 4"):
        delta.apply(new)
    with pytest.raises(ValueError, match="revision 4"):
        delta.apply(old.model_copy(update={"hash": "f" * 16}))
