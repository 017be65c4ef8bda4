"""Process settings, read once from the environment and passed in explicitly."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path


def _default_home() -> Path:
    return Path(os.environ.get("EDGEPLANE_HOME") or "./.edgeplane")


@dataclass(frozen=True)
class Settings:
    home: Path = field(default_factory=_default_home)
    database_url: str | None = None
    geoip_db: str | None = None
    url: str | None = None
    token: str | None = None
    # The key that encrypts secrets at rest (private keys); else $EDGEPLANE_HOME/secret.key.
    secret_key: str | None = None
    # A server whose latest metrics reach any of these utilisation percentages has no spare
    # capacity for routing (the alert thresholds of the operations guide).
    route_max_cpu: float = 80.0
    route_max_memory: float = 80.0
    route_max_storage: float = 85.0
    # Metrics older than this many seconds are not trusted for routing decisions.
    metrics_max_age_s: float = 300.0

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        env = os.environ
        base = cls(
            database_url=env.get("EDGEPLANE_DATABASE_URL") or None,
            geoip_db=env.get("EDGEPLANE_GEOIP_DB") or None,
            url=env.get("EDGEPLANE_URL") or None,
            token=env.get("EDGEPLANE_TOKEN") or None,
            secret_key=env.get("EDGEPLANE_SECRET_KEY") or None,
        )
        clean = {k: v for k, v in overrides.items() if v is not None}
        if "home" in clean:
            clean["home"] = Path(str(clean["home"]))
        return replace(base, **clean)  # type: ignore[arg-type]

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'edgeplane.db').resolve()}"

    @property
    def secret_key_path(self) -> Path:
        return self.home / "secret.key"

    @property
    def admin_token_path(self) -> Path:
        return self.home / "admin-token"
