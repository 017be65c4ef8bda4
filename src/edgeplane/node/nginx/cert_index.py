"""Which certificate covers a name: certificates indexed by their names (pure).

Looking a name up among all certificates one by one made the SNI map quadratic: 10,000
names against 10,000 certificates took minutes to render. The index answers each name with
two dictionary lookups: its exact name, and the wildcard one label up.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from edgeplane.protocol.config import CertSpec


@dataclass(frozen=True)
class CertIndex:
    exact: dict[str, list[CertSpec]] = field(default_factory=dict)  # lower-case name ->
    wildcard: dict[str, list[CertSpec]] = field(default_factory=dict)  # "*.x": "x" ->
    by_id: dict[str, CertSpec] = field(default_factory=dict)

    @classmethod
    def of(cls, certs: Iterable[CertSpec]) -> CertIndex:
        """The index of ``certs``."""
        return cls().updated(certs)

    def updated(self, certs: Iterable[CertSpec]) -> CertIndex:
        """The index of ``certs``, from this one: only the certificates added or removed
        since are looked at (a certificate's names are fixed by its id, the hash of its
        chain). This index is left as it is; lists it shares with the new one are copied
        before they change."""
        by_id = {c.id: c for c in certs}
        if by_id.keys() == self.by_id.keys():
            return self
        exact, wildcard = dict(self.exact), dict(self.wildcard)
        for gone in self.by_id.keys() - by_id.keys():
            for name in _names(self.by_id[gone]):
                _drop(exact, name, gone)
                if name.startswith("*."):
                    _drop(wildcard, name[2:], gone)
        for new in by_id.keys() - self.by_id.keys():
            cert = by_id[new]
            for name in _names(cert):
                exact[name] = [*exact.get(name, ()), cert]
                if name.startswith("*."):
                    wildcard[name[2:]] = [*wildcard.get(name[2:], ()), cert]
        return CertIndex(exact, wildcard, by_id)

    def named(self, name: str) -> list[CertSpec]:
        """The certificates naming ``name`` exactly (case-insensitive)."""
        return self.exact.get(name.lower(), [])

    def covering(self, host: str) -> list[CertSpec]:
        """The certificates whose names cover ``host``: exactly, or by a wildcard of the
        label above (``*.example.com`` covers ``www.example.com``, not ``example.com``)."""
        host = host.lower()
        head, _, rest = host.partition(".")
        wild = self.wildcard.get(rest, []) if head else []
        return [*self.exact.get(host, []), *wild]

    def covers(self, host: str) -> bool:
        host = host.lower()
        if host in self.exact:
            return True
        head, _, rest = host.partition(".")
        return bool(head) and rest in self.wildcard


def _names(cert: CertSpec) -> set[str]:
    return {n.lower() for n in cert.names}


def _drop(index: dict[str, list[CertSpec]], name: str, cert_id: str) -> None:
    left = [c for c in index.get(name, ()) if c.id != cert_id]
    if left:
        index[name] = left
    else:
        index.pop(name, None)
