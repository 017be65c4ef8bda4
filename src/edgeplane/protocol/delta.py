"""A manifest as the changes from one the node already has (``ManifestDelta``).

At 10,000 domains a manifest is megabytes (every site's domains, 10,000 certificate and zone
references, 10,000 ownership tokens); sent whole for every change, the node parsed it all
again, and the tens of thousands of objects that made set off the garbage collector's full
walks of the agent's heap. A node that holds the manifest of revision ``after`` says so on its
long-poll (``have=<its hash>``) and, when the control plane still has that revision, gets the
changes: per sequence of the manifest, the positions removed and the items added at their
positions (``Changes``). Every sequence of a manifest is sorted and free of duplicates, so
the items both have keep their order, and the node rebuilds the new manifest exactly
(``ManifestDelta.apply``), reusing every unchanged item it holds. The small per-node fields
(the node, its bundles, prefetch list and functions, the ticket keys, the GeoDNS answers)
come whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import islice
from typing import Any, Generic, TypeVar

from pydantic import Field

from edgeplane.protocol.config import (
    AcmeHttpSpec,
    BundleSpec,
    EdgeManifest,
    Frozen,
    FunctionSpec,
    GeoDnsSpec,
    NodeSpec,
    PoolSpec,
    SiteSpec,
    TicketKeySpec,
    VerificationSpec,
)

T = TypeVar("T")


class Changes(Frozen, Generic[T]):
    """How a sequence became another: the positions removed (in the old one, ascending) and
    the items added (at their positions in the new one, ascending)."""

    removed: tuple[int, ...] = ()
    added: tuple[tuple[int, T], ...] = ()


def changes(old: Sequence[T], new: Sequence[T]) -> Changes[T]:
    """The ``Changes`` from ``old`` to ``new`` (both without duplicates, in the same order for
    the items they share)."""
    olds, news = set(old), set(new)
    return Changes(
        removed=tuple(i for i, x in enumerate(old) if x not in news),
        added=tuple((i, x) for i, x in enumerate(new) if x not in olds),
    )


def object_changes(old: Sequence[T], new: Sequence[T]) -> Changes[T]:
    """``changes`` of sequences of models: the very same object in both is the same item
    without a look at it (consecutive revisions share most of their objects, which are then
    neither hashed nor compared); the others are compared by value."""
    both = set(map(id, old)).intersection(map(id, new))
    if len(both) == len(old) == len(new):
        return Changes()
    old_rest = [x for x in old if id(x) not in both]
    new_rest = [x for x in new if id(x) not in both]
    had, has = set(old_rest), set(new_rest)
    return Changes(
        removed=tuple(i for i, x in enumerate(old) if id(x) not in both and x not in has),
        added=tuple((i, x) for i, x in enumerate(new) if id(x) not in both and x not in had),
    )


def patched(old: Sequence[T], change: Changes[T]) -> tuple[T, ...]:
    """``old`` with ``change`` applied, in one pass; ``ValueError`` when it does not fit."""
    if not change.removed and not change.added:
        return tuple(old)
    gone = set(change.removed)
    if gone and not (min(gone) >= 0 and max(gone) < len(old)):
        raise ValueError("a removed position is outside the sequence")
    kept = iter([x for i, x in enumerate(old) if i not in gone] if gone else old)
    out: list[T] = []
    for i, item in change.added:
        if i < len(out):
            raise ValueError("the added positions are not ascending")
        out.extend(islice(kept, i - len(out)))
        if len(out) < i:
            raise ValueError("an added position is beyond the sequence")
        out.append(item)
    out.extend(kept)
    return tuple(out)


class ManifestDelta(Frozen):
    """The manifest of ``revision`` as changes to that of ``base`` (whose hash is
    ``base_hash``), which the node holds."""

    base: int
    base_hash: str
    revision: int
    hash: str
    http_hash: str
    node: NodeSpec
    sites: Changes[SiteSpec] = Changes()
    pools: Changes[PoolSpec] = Changes()
    certs: Changes[str] = Changes()
    zones: Changes[tuple[str, str]] = Changes()  # (zone name, object hash)
    verifications: Changes[VerificationSpec] = Changes()
    acme_http: Changes[AcmeHttpSpec] = Changes()
    ticket_keys: tuple[TicketKeySpec, ...] = ()
    geo: GeoDnsSpec = GeoDnsSpec()
    bundles: tuple[BundleSpec, ...] = ()
    prefetch: tuple[str, ...] = ()
    functions: tuple[FunctionSpec, ...] = Field((), exclude_if=lambda v: not v)  # whole

    @classmethod
    def between(cls, old: EdgeManifest, new: EdgeManifest) -> ManifestDelta:
        """The delta that makes ``new`` of ``old``, from the two manifests whole (the control
        plane computes the same from its builds: ``SnapshotCache.delta``)."""
        return cls(
            base=old.revision,
            base_hash=old.hash,
            revision=new.revision,
            hash=new.hash,
            http_hash=new.http_hash,
            node=new.node,
            ticket_keys=new.ticket_keys,
            geo=new.geo,
            bundles=new.bundles,
            prefetch=new.prefetch,
            functions=new.functions,
            **shared_changes(old, new),
        )

    def apply(self, base: EdgeManifest) -> EdgeManifest:
        """The new manifest, from ``base``; ``ValueError`` when ``base`` is not the one this
        delta was made from."""
        if base.revision != self.base or base.hash != self.base_hash:
            raise ValueError(
                f"the delta applies to revision {self.base} ({self.base_hash}), "
                f"not {base.revision} ({base.hash})"
            )
        zones = base.zones
        if self.zones.removed or self.zones.added:
            zones = dict(patched(list(zones.items()), self.zones))
        return base.model_copy(
            update={
                "revision": self.revision,
                "hash": self.hash,
                "http_hash": self.http_hash,
                "node": self.node,
                "sites": patched(base.sites, self.sites),
                "pools": patched(base.pools, self.pools),
                "certs": patched(base.certs, self.certs),
                "zones": zones,
                "verifications": patched(base.verifications, self.verifications),
                "acme_http": patched(base.acme_http, self.acme_http),
                "ticket_keys": self.ticket_keys,
                "geo": self.geo,
                "bundles": self.bundles,
                "prefetch": self.prefetch,
                "functions": self.functions,
            }
        )


class SharedFields(Frozen):
    """What ``shared_changes`` compares: the fields of a manifest every node shares."""

    sites: tuple[SiteSpec, ...] = ()
    pools: tuple[PoolSpec, ...] = ()
    certs: tuple[str, ...] = ()
    zones: dict[str, str] = Field(default_factory=dict)
    verifications: tuple[VerificationSpec, ...] = ()
    acme_http: tuple[AcmeHttpSpec, ...] = ()


def shared_changes(
    old: SharedFields | EdgeManifest, new: SharedFields | EdgeManifest
) -> dict[str, Changes[Any]]:
    """The ``Changes`` of each shared sequence from ``old`` to ``new`` (``ManifestDelta``'s
    fields of those names)."""
    return {
        "sites": object_changes(old.sites, new.sites),
        "pools": object_changes(old.pools, new.pools),
        "certs": changes(old.certs, new.certs),
        "zones": changes(list(old.zones.items()), list(new.zones.items())),
        "verifications": object_changes(old.verifications, new.verifications),
        "acme_http": object_changes(old.acme_http, new.acme_http),
    }
