"""Which scope each endpoint needs: one table for the whole API, checked in one place.

Every authenticated request of the REST API passes ``api.deps.get_actor`` (or, for
``/metrics``, ``api.prometheus.require_scraper``), which calls ``check``: a token with scopes
(``edgeplane.model.scopes``) must hold one that allows the kind and the action of the endpoint
it calls, else 403 naming the scope missing. The services' role checks run as before, so a call
needs both its role and its scope.

``RULES`` maps path prefixes (``{name}`` matches one segment) to a kind; the longest matching
prefix wins. The action is ``read`` for GET and HEAD, ``write`` for the other methods, unless
the rule names one (``cdn:purge``, ``certificates:reveal``, an IaC plan that only reads). A
kind of ``None`` is open to any token (``whoami``); ``*`` is a call that touches every kind
(IaC), which only a scope of kind ``*`` allows. A path that no rule matches is refused to a
token with scopes (fail closed), and ``tests/api/test_token_scopes.py`` checks that every
route that authenticates a token has a rule (and every rule a route), so a new router cannot
forget its scope.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from edgeplane.errors import Forbidden
from edgeplane.model import scopes as sc
from edgeplane.store.actor import Actor

API = "/api/v1"
INV = f"{API}/infrastructure"
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Rule:
    prefix: str
    kind: str | None  # None: any token; "*": every kind
    action: str | None = None  # None: by method
    methods: frozenset[str] | None = None  # None: every method

    @property
    def segments(self) -> list[str]:
        return self.prefix.strip("/").split("/")


def _post(prefix: str, kind: str | None, action: str) -> Rule:
    return Rule(prefix, kind, action, frozenset({"POST"}))


RULES: tuple[Rule, ...] = (
    Rule("/metrics", "metrics"),
    Rule(f"{API}/whoami", None),
    Rule(f"{API}/revision", None),
    Rule(f"{API}/projects", "projects"),
    Rule(f"{API}/tokens", "tokens"),
    Rule(f"{API}/service-accounts", "service_accounts"),
    Rule(f"{API}/audit", "audit"),
    Rule(f"{API}/logins", "logins"),
    Rule(f"{INV}/regions", "regions"),
    Rule(f"{INV}/datacenters", "datacenters"),
    Rule(f"{INV}/servers", "servers"),
    Rule(f"{INV}/services", "services"),
    Rule(f"{INV}/loadbalancer", "load_balancers"),
    Rule(f"{INV}/dr-configs", "dr"),
    Rule(f"{INV}/scaling-groups", "scaling"),
    Rule(f"{INV}/route", "routing"),
    Rule(f"{INV}/cdn", "cdn"),
    _post(f"{INV}/cdn/purge", "cdn", "purge"),
    Rule(f"{API}/costs", "costs"),
    _post(f"{API}/costs/estimate", "costs", sc.READ),
    # the user's side of edge nodes; the edge protocol below them takes edge tokens only,
    # which have no scopes (``api.deps.get_edge_actor``)
    Rule(f"{API}/edge/nodes", "edge_nodes"),
    Rule(f"{INV}/edge", "edge_deployments"),
    Rule(f"{INV}/functions", "functions"),
    _post(f"{INV}/functions/check", "functions", sc.READ),  # compiles, changes nothing
    Rule(f"{INV}/domains", "domains"),
    Rule(f"{INV}/domains/{{domain}}/records", "dns_records"),
    Rule(f"{INV}/domains/{{domain}}/logs", "access_logs"),
    Rule(f"{INV}/ssl", "certificates"),
    Rule(f"{INV}/ca", "certificates"),  # the internal CA (the edge's origin client certificate)
    Rule(f"{INV}/ssl/{{domain}}/private-key", "certificates", sc.REVEAL),
    Rule(f"{API}/alerts", "alerts"),
    Rule(f"{API}/metrics", "metrics"),
    Rule(f"{API}/overview", "overview"),
    Rule(f"{API}/iac", sc.ANY),
    _post(f"{API}/iac/plan", sc.ANY, sc.READ),
    Rule(f"{API}/backups", "backups"),
    Rule(f"{API}/control-plane", "control_plane"),
    Rule(f"{API}/secrets", "secrets"),
    Rule(f"{API}/security", "security"),
)


def _matches(rule: Rule, parts: list[str], method: str) -> bool:
    if rule.methods is not None and method not in rule.methods:
        return False
    want = rule.segments
    if len(parts) < len(want):
        return False
    return all(w.startswith("{") or w == p for w, p in zip(want, parts, strict=False))


def rule_for(method: str, path: str) -> Rule | None:
    """The rule of a request (its path as sent, or an OpenAPI template), or None."""
    parts = path.strip("/").split("/")
    best: Rule | None = None
    for rule in RULES:
        if _matches(rule, parts, method):
            exact = best is not None and len(rule.segments) == len(best.segments)
            if best is None or len(rule.segments) > len(best.segments):
                best = rule
            elif exact and rule.methods is not None and best.methods is None:
                best = rule  # the same prefix for one method only: more specific
    return best


def need(method: str, path: str) -> tuple[str, str] | None:
    """(kind, action) a request needs; None when any token may call it. KeyError when the
    path has no rule."""
    rule = rule_for(method.upper(), path)
    if rule is None:
        raise KeyError(f"{method} {path}")
    if rule.kind is None:
        return None
    action = rule.action or (sc.READ if method.upper() in READ_METHODS else sc.WRITE)
    return rule.kind, action


def check(actor: Actor, request: Request) -> None:
    """403 unless ``actor``'s scopes allow the request (a token without scopes passes)."""
    if not actor.scoped:
        return
    path = request.url.path
    root = request.scope.get("root_path") or ""
    if root and path.startswith(root):
        path = path[len(root) :]
    try:
        needed = need(request.method, path)
    except KeyError:
        raise Forbidden(
            f"{request.method} {path} is not open to tokens with scopes (no scope names it)"
        ) from None
    if needed is not None:
        actor.require_scope(*needed)
