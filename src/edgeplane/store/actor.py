"""Who is acting, and what their roles allow."""

from __future__ import annotations

from dataclasses import dataclass, field

from edgeplane.errors import Forbidden
from edgeplane.model import scopes as sc
from edgeplane.model.enums import Role

PLATFORM_PROJECT = "default"


@dataclass(frozen=True)
class Actor:
    """A caller: a token's holder, or the local operator of an embedded store.

    ``roles`` maps project ids to roles. The admins of the default project administer the
    platform itself (regions, projects, tokens of other projects).
    """

    name: str
    roles: dict[str, Role] = field(default_factory=dict)
    token_id: str | None = None
    local: bool = False
    edge: bool = False  # an edge token: the edge protocol only, no roles
    metrics: bool = False  # a metrics token: scraping /metrics only, no roles
    # Scopes (``edgeplane.model.scopes``): each set must allow a call (the token's own and,
    # for a service account's token, the account's); none: the roles alone decide.
    scope_sets: tuple[tuple[sc.Scope, ...], ...] = ()
    service_account: str | None = None  # the service account owning the token

    @property
    def scoped(self) -> bool:
        return bool(self.scope_sets)

    def scope_allows(self, kind: str, action: str) -> bool:
        return all(sc.allowed(s, kind, action) for s in self.scope_sets)

    def require_scope(self, kind: str, action: str) -> None:
        """Forbidden, naming the scope missing, unless every scope set allows ``action`` on
        ``kind`` (a token without scopes passes: its roles decide)."""
        if not self.scope_allows(kind, action):
            raise Forbidden(
                f"this token's scopes do not allow {action} on {kind}: it needs the scope "
                f"{kind}:{action}",
                missing_scope=f"{kind}:{action}",
            )

    def role_in(self, project: str) -> Role | None:
        if self.local:
            return Role.ADMIN
        return self.roles.get(project)

    def require(self, project: str, needed: Role) -> None:
        role = self.role_in(project)
        if role is None:
            raise Forbidden(f"this token has no role in project {project!r}")
        if not role.allows(needed):
            raise Forbidden(
                f"this action needs the {needed.value} role in project {project!r}; "
                f"this token is {role.value}"
            )

    @property
    def platform_admin(self) -> bool:
        return self.role_in(PLATFORM_PROJECT) is Role.ADMIN

    def require_platform_admin(self) -> None:
        if not self.platform_admin:
            raise Forbidden("this action needs the admin role in the default project")


LOCAL = Actor(name="local", local=True)
