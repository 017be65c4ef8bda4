"""The routes of a function version: hosts of the project, and no route answered by two
functions.

A route's host is ``*`` (every domain of the project) or one of the project's domains. Two
routes overlap when their hosts meet (equal, or either is ``*``), their paths are equal
(``/api/*`` and ``/api/*``; a prefix and a longer path are not an overlap: the most specific
wins at the edge) and their methods meet (none stands for every method). A route that
overlaps a route of another function's live version (canary, rolling or active) is refused.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select

from edgeplane.errors import Conflict, InvalidInput
from edgeplane.model.functions import LIVE_STATUSES, FunctionRoute, split_pattern
from edgeplane.store.db import Tx
from edgeplane.store.function_tables import FunctionVersionRow
from edgeplane.store.tables import DomainRow


def project_domains(tx: Tx) -> set[str]:
    return set(tx.session.scalars(select(DomainRow.name).where(DomainRow.project_id == tx.project)))


def check_hosts(tx: Tx, routes: Sequence[FunctionRoute]) -> None:
    """422 naming ``routes.N.pattern`` when a host is not a domain of the project."""
    domains: set[str] | None = None
    for i, route in enumerate(routes):
        host = route.host
        if host == "*":
            continue
        if domains is None:
            domains = project_domains(tx)
        if host not in domains:
            raise InvalidInput.at(
                f"routes.{i}.pattern", f"{host} is not a domain of project {tx.project!r}"
            )


def overlaps(a: FunctionRoute, b: FunctionRoute) -> bool:
    """Whether one request could match both routes (see the module's docstring)."""
    host_a, path_a = split_pattern(a.pattern)
    host_b, path_b = split_pattern(b.pattern)
    if path_a != path_b or not (host_a == host_b or "*" in (host_a, host_b)):
        return False
    return not a.methods or not b.methods or bool(set(a.methods) & set(b.methods))


def check_duplicates(routes: Sequence[FunctionRoute]) -> None:
    """422 naming ``routes.N.pattern`` when two routes of the version overlap each other."""
    for i, route in enumerate(routes):
        for j in range(i):
            if overlaps(route, routes[j]):
                raise InvalidInput.at(
                    f"routes.{i}.pattern", f"overlaps routes.{j} ({routes[j].pattern})"
                )


def check_overlap(tx: Tx, name: str, routes: Sequence[FunctionRoute]) -> None:
    """409 naming ``routes.N.pattern`` and the other function when a route overlaps a route
    of another function's live version."""
    others = tx.session.scalars(
        select(FunctionVersionRow)
        .where(
            FunctionVersionRow.project_id == tx.project,
            FunctionVersionRow.name != name,
            FunctionVersionRow.status.in_(LIVE_STATUSES),
        )
        .order_by(FunctionVersionRow.name, FunctionVersionRow.version)
    )
    theirs = [(row, FunctionRoute.model_validate(r)) for row in others for r in row.routes or ()]
    for i, route in enumerate(routes):
        for row, other in theirs:
            if overlaps(route, other):
                raise Conflict(
                    f"routes.{i}.pattern: {route.pattern} overlaps {other.pattern} of function "
                    f"{row.name!r} (version {row.version})",
                    field=f"routes.{i}.pattern",
                )
