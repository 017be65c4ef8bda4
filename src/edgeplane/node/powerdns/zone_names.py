"""Zones (name -> hash) by their canonical names, kept up to date by difference.

The DNS engine and the geo worker are each handed a node's 10,000 zones at every change, and
each needs them by canonical name (PowerDNS's spelling, or ``geozones.norm``'s). Spelling
10,000 names again for one that changed was most of what either did per change; ``by_name``
starts from the last result instead and looks only at the names whose hash differs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class ByName:
    given: dict[str, str]  # the zones as given: name -> hash
    zones: dict[str, str]  # the same by canonical name (fewer when two names are one zone)


def by_name(
    zones: Mapping[str, str], canonical: Callable[[str], str], last: ByName | None
) -> tuple[ByName, list[str] | None]:
    """``zones`` by ``canonical`` name, and the names (as given) added or changed since
    ``last``; None when any may have: without ``last``, when most changed, or when two
    names are one zone (then ``len(result.zones) < len(zones)``)."""
    if last is not None:
        changed = [name for name, _ in zones.items() - last.given.items()]
        gone = last.given.keys() - zones.keys()
        if 2 * (len(changed) + len(gone)) < len(zones):
            out = dict(last.zones)
            for name in gone:
                out.pop(canonical(name), None)
            for name in changed:
                out[canonical(name)] = zones[name]
            if len(out) == len(zones):
                return ByName(dict(zones), out), changed
    out = {canonical(name): digest for name, digest in zones.items()}
    return ByName(dict(zones), out), None
