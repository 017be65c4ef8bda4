"""Token scopes: which kinds of objects a token may touch, and how.

A scope is ``KIND:ACTION``: ``dns_records:write``, ``load_balancers:read``, ``cdn:purge``,
``*:read``. ``KIND`` is one of ``KINDS`` or ``*`` (every kind); ``ACTION`` is ``read``,
``write``, an action of the kind's own (``cdn:purge``, ``certificates:reveal``) or ``*`` (every
action of the kind). ``write`` includes ``read`` and the kind's own actions but never
``reveal``: reading a secret's plain text is always named on its own.

A token without scopes acts by its roles alone (as before scopes existed). A token with scopes
acts by its roles *and* its scopes: a call needs both, so a scope never grants more than the
role (``min_role`` says which role each action needs; a token asking for a scope its roles
cannot use is refused when it is made).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from edgeplane.model.enums import Role

READ, WRITE, REVEAL = "read", "write", "reveal"
ANY = "*"

# kind -> its own actions beyond read and write
KINDS: dict[str, tuple[str, ...]] = {
    "projects": (),
    "tokens": (),
    "service_accounts": (),
    "audit": (),
    "logins": (),
    "regions": (),
    "datacenters": (),
    "servers": (),
    "services": (),
    "load_balancers": (),
    "dr": (),
    "scaling": (),
    "routing": (),
    "cdn": ("purge",),
    "costs": (),
    "security": (),  # scores, compliance, the edge nodes' exposed surface
    "edge_nodes": (),
    "edge_deployments": (),
    "functions": (),
    "domains": (),
    "dns_records": (),
    "access_logs": (),
    "certificates": (REVEAL,),
    "alerts": (),
    "metrics": (),
    "overview": (),
    "iac": (),
    "backups": (),
    "control_plane": (),
    "secrets": (),
}


def actions_of(kind: str) -> tuple[str, ...]:
    """The actions a scope may name for ``kind`` (``*``: those of every kind)."""
    if kind == ANY:
        extra = sorted({a for own in KINDS.values() for a in own})
        return (READ, WRITE, *extra, ANY)
    return (READ, WRITE, *KINDS[kind], ANY)


@dataclass(frozen=True)
class Scope:
    kind: str
    action: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.action}"

    def allows(self, kind: str, action: str) -> bool:
        """Whether this scope lets a call do ``action`` on ``kind`` (``kind`` ``*``: a call
        that touches every kind, such as an IaC apply, needs a scope of kind ``*``)."""
        if self.kind not in (ANY, kind):
            return False
        if self.action in (ANY, action):
            return True
        return self.action == WRITE and action != REVEAL

    def grants(self) -> list[tuple[str, str]]:
        """The (kind, action) pairs this scope allows, ``*`` kinds included as such."""
        kinds = [*KINDS, ANY] if self.kind == ANY else [self.kind]
        return [(k, a) for k in kinds for a in actions_of(k) if a != ANY and self.allows(k, a)]


def parse(text: str) -> Scope:
    """``KIND:ACTION`` -> a Scope; ValueError with the reason for anything else."""
    kind, sep, action = text.strip().partition(":")
    if not sep or not kind or not action:
        raise ValueError(f"{text!r} is not KIND:ACTION (for example dns_records:write)")
    if kind != ANY and kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; known: *, {', '.join(sorted(KINDS))}")
    if action not in actions_of(kind):
        raise ValueError(
            f"unknown action {action!r} for {kind!r}; known: {', '.join(actions_of(kind))}"
        )
    return Scope(kind, action)


def parse_all(texts: Iterable[str]) -> tuple[Scope, ...]:
    return tuple(parse(t) for t in texts)


def allowed(scopes: Sequence[Scope], kind: str, action: str) -> bool:
    return any(s.allows(kind, action) for s in scopes)


def covers(outer: Sequence[Scope], inner: Scope) -> bool:
    """Whether everything ``inner`` allows is allowed by ``outer`` (a token may only hand on
    scopes it holds itself)."""
    return all(allowed(outer, k, a) for k, a in inner.grants())


ROLE_OF_ACTION = {READ: Role.VIEWER, REVEAL: Role.ADMIN}  # any other action: editor


def min_role(scope: Scope) -> Role:
    """The least role a token needs for ``scope`` to be of any use: the highest role an
    action it allows needs (read: viewer; reveal: admin; write and the rest: editor)."""
    needed = [ROLE_OF_ACTION.get(a, Role.EDITOR) for _, a in scope.grants()]
    return max(needed, key=lambda r: r.rank)


def every_scope() -> list[str]:
    """Every scope a token may name (the API's schema lists them)."""
    return [f"{k}:{a}" for k in (ANY, *KINDS) for a in actions_of(k)]


def normalise(texts: Iterable[str]) -> list[str]:
    """Parsed, without duplicates, sorted: how scopes are stored and shown."""
    return sorted({str(parse(t)) for t in texts})
