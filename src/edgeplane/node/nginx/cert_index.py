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

    @classmethod
    def of(cls, certs: Iterable[CertSpec]) -> CertIndex:
        """The index of ``certs``; of the same tuple as the last call, the same index (an
        apply asks twice: for the SNI links and for the HTTPS redirects)."""
        global _last
        last = _last  # read once: another thread's apply may replace it
        if last is not None and last[0] is certs:
            return last[1]
        index = cls._build(certs)
        if isinstance(certs, tuple):
            _last = (certs, index)  # held: the tuple (immutable, of frozen models) lives
        return index

    @classmethod
    def _build(cls, certs: Iterable[CertSpec]) -> CertIndex:
        index = cls()
        exact, wildcard = index.exact, index.wildcard
        for cert in certs:
            for name in {n.lower() for n in cert.names}:
                if name in exact:
                    exact[name].append(cert)
                else:
                    exact[name] = [cert]
                if name.startswith("*."):
                    wildcard.setdefault(name[2:], []).append(cert)
        return index

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


_last: tuple[tuple[CertSpec, ...], CertIndex] | None = None  # the last tuple indexed


def forget_last() -> None:
    global _last
    _last = None
