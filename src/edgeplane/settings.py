"""Process settings, read once from the environment and passed in explicitly."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from edgeplane.bundles import limits as bundle_limits


def _default_home() -> Path:
    return Path(os.environ.get("EDGEPLANE_HOME") or "./.edgeplane")


def _flag(text: str) -> bool:
    return text.strip().lower() in ("1", "true", "yes", "on")


_ENV_FIELDS: tuple[tuple[str, str, Callable[[str], object]], ...] = (
    ("EDGEPLANE_VERIFY_NS_PORT", "verify_ns_port", int),
    ("EDGEPLANE_VERIFY_HTTP_PORT", "verify_http_port", int),
    ("EDGEPLANE_SMTP_HOST", "smtp_host", str),
    ("EDGEPLANE_SMTP_PORT", "smtp_port", int),
    ("EDGEPLANE_SMTP_FROM", "smtp_sender", str),
    ("EDGEPLANE_SMTP_STARTTLS", "smtp_starttls", _flag),
    ("EDGEPLANE_SMTP_USERNAME", "smtp_username", str),
    ("EDGEPLANE_SMTP_PASSWORD", "smtp_password", str),
    ("EDGEPLANE_CAA_ISSUER", "caa_issuer", str),
    ("EDGEPLANE_NODE_TIMEOUT", "node_timeout_s", float),
    ("EDGEPLANE_ACME_DIRECTORY", "acme_directory", str),
    ("EDGEPLANE_ACME_EMAIL", "acme_email", str),
    ("EDGEPLANE_ACME_EAB_KID", "acme_eab_kid", str),
    ("EDGEPLANE_ACME_EAB_HMAC_KEY", "acme_eab_hmac_key", str),
    ("EDGEPLANE_ACME_CA_BUNDLE", "acme_ca_bundle", str),
    ("EDGEPLANE_RENEW_INTERVAL", "renew_interval_s", float),
    ("EDGEPLANE_RENEW_RETRY", "renew_retry_s", float),
    ("EDGEPLANE_ALERT_WEBHOOK", "alert_webhook", str),
    ("EDGEPLANE_ALERT_INTERVAL", "alert_interval_s", float),
    ("EDGEPLANE_METRICS_MINUTE_RETENTION", "metrics_minute_retention_s", float),
    ("EDGEPLANE_METRICS_HOUR_RETENTION", "metrics_hour_retention_s", float),
    ("EDGEPLANE_SERVER_METRICS_RETENTION", "server_metrics_retention_s", float),
    ("EDGEPLANE_AUDIT_RETENTION", "audit_retention_s", float),
    ("EDGEPLANE_ALERT_RETENTION", "alert_retention_s", float),
    ("EDGEPLANE_BUDGET_INTERVAL", "budget_interval_s", float),
    ("EDGEPLANE_DRIFT_INTERVAL", "drift_interval_s", float),
    ("EDGEPLANE_SESSION_TTL", "session_ttl_s", float),
    ("EDGEPLANE_DEPLOY_CANARY_TIMEOUT", "canary_timeout_s", float),
    ("EDGEPLANE_DEPLOY_ROLLOUT_TIMEOUT", "rollout_timeout_s", float),
    ("EDGEPLANE_PUBLIC_URL", "public_url", str),
    ("EDGEPLANE_INTERNAL_OCSP", "internal_ocsp", _flag),
    ("EDGEPLANE_STAPLE_INTERVAL", "staple_interval_s", float),
    ("EDGEPLANE_ACCESS_LOG_RETENTION", "access_log_retention_s", float),
    ("EDGEPLANE_WAF_MATCH_RETENTION", "waf_match_retention_s", float),
    ("EDGEPLANE_ACCESS_LOG_PER_DOMAIN", "access_log_per_domain", int),
    ("EDGEPLANE_FUNCTION_LOG_RETENTION", "function_log_retention_s", float),
    ("EDGEPLANE_FUNCTION_LOG_PER_FUNCTION", "function_log_per_function", int),
    ("EDGEPLANE_BACKUP_KEY", "backup_key", str),
    ("EDGEPLANE_BACKUP_TARGETS", "backup_targets", str),
    ("EDGEPLANE_BACKUP_SCHEDULE", "backup_schedule", str),
    ("EDGEPLANE_BACKUP_FULL_EVERY", "backup_full_every_s", float),
    ("EDGEPLANE_BACKUP_INCREMENTAL_EVERY", "backup_incremental_every_s", float),
    ("EDGEPLANE_BACKUP_VERIFY_EVERY", "backup_verify_every_s", float),
    ("EDGEPLANE_BACKUP_START_DELAY", "backup_start_delay_s", float),
    ("EDGEPLANE_BACKUP_FULL_RETENTION", "backup_full_retention_s", float),
    ("EDGEPLANE_BACKUP_INCREMENTAL_RETENTION", "backup_incremental_retention_s", float),
    ("EDGEPLANE_BACKUP_CONFIG_RETENTION", "backup_config_retention_s", float),
    ("EDGEPLANE_BACKUP_WAL_DIR", "backup_wal_dir", str),
    ("EDGEPLANE_DR_DETECT", "dr_detect_s", float),
    ("EDGEPLANE_DR_FAILBACK_AFTER", "dr_failback_after_s", float),
    ("EDGEPLANE_SCALING_INTERVAL", "scaling_interval_s", float),
    ("EDGEPLANE_LEADER_TTL", "leader_ttl_s", float),
    ("EDGEPLANE_LEADER_RENEW", "leader_renew_s", float),
    ("EDGEPLANE_SECURITY_SCORE_INTERVAL", "security_score_interval_s", float),
    ("EDGEPLANE_SECURITY_SCORE_RETENTION", "security_score_retention_s", float),
    ("EDGEPLANE_SECURITY_TRUST_FILE", "security_trust_file", str),
    ("EDGEPLANE_SECURITY_SCAN_INTERVAL", "security_scan_interval_s", float),
    ("EDGEPLANE_SECURITY_SCAN_PORTS", "security_scan_ports", str),
)


@dataclass(frozen=True)
class Settings:
    home: Path = field(default_factory=_default_home)
    database_url: str | None = None
    geoip_db: str | None = None
    url: str | None = None
    token: str | None = None
    # Where the world reaches this control plane (``http://cp.example.com:8800``): the internal
    # CA's certificates name its OCSP responder there. ``serve`` and ``up`` default it to the
    # address they listen on.
    public_url: str | None = None
    # The internal CA's certificates name its OCSP responder (at the public URL) and the edge
    # staples them. Off by default: a certificate with a staple is served by a ``server`` block
    # of its own (memory and reload time per certificate, see docs/performance.md), which is
    # worth it for a CA that clients check, rarely for a private one. Certificates of other CAs
    # that name an OCSP responder are stapled either way.
    internal_ocsp: bool = False
    # The key that encrypts secrets at rest (private keys); else $EDGEPLANE_HOME/secret.key.
    secret_key: str | None = None
    # A server whose latest metrics reach any of these utilisation percentages has no spare
    # capacity for routing (the alert thresholds of the operations guide).
    route_max_cpu: float = 80.0
    route_max_memory: float = 80.0
    route_max_storage: float = 85.0
    # Metrics older than this many seconds are not trusted for routing decisions.
    metrics_max_age_s: float = 300.0
    # Ownership verification looks domains up the way the world sees them: through these
    # recursive resolvers ("host:port"), then at the domain's delegated name servers on
    # ``verify_ns_port``; file verification fetches over HTTP on ``verify_http_port``.
    dns_resolvers: tuple[str, ...] = ("1.1.1.1:53", "8.8.8.8:53")
    verify_ns_port: int = 53
    verify_http_port: int = 80
    verify_timeout_s: float = 3.0
    verification_token_ttl_s: float = 7 * 86400.0
    email_code_ttl_s: float = 1800.0
    reverify_interval_s: float = 6 * 3600.0
    reverify_failures: int = 3  # consecutive failed re-checks before a domain is unverified
    # Email verification: where codes are sent from.
    smtp_host: str = "localhost"
    smtp_port: int = 25
    smtp_sender: str = "edgeplane@localhost"
    smtp_starttls: bool = False
    smtp_username: str | None = None
    smtp_password: str | None = None
    # The CA named in auto-configured CAA records.
    caa_issuer: str = "letsencrypt.org"
    # ACME: the CA ("letsencrypt", "letsencrypt-staging" or a directory URL), the account's
    # contact, external account binding (ZeroSSL and others), a CA file to trust for the ACME
    # server's HTTPS (a private CA such as Pebble's).
    acme_directory: str = "letsencrypt"
    acme_email: str | None = None
    acme_eab_kid: str | None = None
    acme_eab_hmac_key: str | None = None
    acme_ca_bundle: str | None = None
    # Certificates are renewed at this fraction of their lifetime; the renewal loop's period.
    renew_at_fraction: float = 2 / 3
    renew_interval_s: float = 60.0
    renew_retry_s: float = 60.0  # the first retry after a failed renewal; doubles each time
    # How often the control plane looks for OCSP staples to fetch (certificates.stapling).
    staple_interval_s: float = 30.0
    # Where certificate (and later other) alerts are POSTed as JSON, if anywhere.
    alert_webhook: str | None = None
    # How often alert rules are evaluated (a rule of a long window less often: window / 60,
    # see services.alert_engine).
    alert_interval_s: float = 5.0
    # Retention (services.retention): minute traffic, then hourly rollups; server metrics; the
    # audit trail; resolved alerts and their notifications.
    metrics_minute_retention_s: float = 7 * 86400.0
    metrics_hour_retention_s: float = 90 * 86400.0
    server_metrics_retention_s: float = 30 * 86400.0
    audit_retention_s: float = 365 * 86400.0
    alert_retention_s: float = 365 * 86400.0
    # How long a dashboard session lasts from sign-in (services.sessions).
    session_ttl_s: float = 12 * 3600.0
    # How often budgets are checked against the month's spending (services.budgets).
    budget_interval_s: float = 60.0
    # How often each project's live state is compared with its last applied file (iac.drift).
    drift_interval_s: float = 300.0
    # An edge node whose last heartbeat is older than this leaves the GeoDNS answers.
    node_timeout_s: float = 5.0
    liveness_interval_s: float = 1.0
    # Edge deployments: how long the canary node, then every other node, has to fetch,
    # activate and check a new version before it is rolled back.
    canary_timeout_s: float = 60.0
    rollout_timeout_s: float = 120.0
    # Access log lines the edge reports (services.access_logs): kept this many seconds, and
    # at most this many per domain (the newest).
    access_log_retention_s: float = 7 * 86400.0
    # WAF matches the edge reports (services.waf): kept this many seconds
    waf_match_retention_s: float = 30 * 86400.0
    access_log_per_domain: int = 10_000
    # Edge functions' console lines (services.function_obs): kept this many seconds, and at
    # most this many per function (the newest).
    function_log_retention_s: float = 7 * 86400.0
    function_log_per_function: int = 10_000
    # Backups of the control plane (edgeplane.backup, docs/disaster-recovery.md): the key
    # (else $EDGEPLANE_HOME/backup.key), the targets besides $EDGEPLANE_HOME/backups
    # ("sftp://user@host/path?identity=..&known_hosts=..", comma-separated), the schedule
    # ("auto": on for SQLite, off for PostgreSQL, which needs a replication role; "on"; "off"),
    # spec 004's periods and retention (full weekly kept 3 months, incremental daily kept a
    # month, configuration on every change kept a year), daily verification by restoring, and
    # how long after start the first backup waits. On PostgreSQL, WAL is streamed into
    # ``backup_wal_dir`` (point-in-time restore) when it is set.
    backup_key: str | None = None
    backup_targets: str | None = None
    backup_schedule: str = "auto"
    backup_full_every_s: float = 7 * 86400.0
    backup_incremental_every_s: float = 86400.0
    backup_verify_every_s: float = 86400.0
    backup_start_delay_s: float = 60.0
    backup_full_retention_s: float = 90 * 86400.0
    backup_incremental_retention_s: float = 30 * 86400.0
    backup_config_retention_s: float = 365 * 86400.0
    backup_wal_dir: str | None = None
    # Disaster recovery (edgeplane.dr): a DR config's primary data center found down for
    # this long fails over (or asks to), and healthy again for this long fails back.
    dr_detect_s: float = 3.0
    dr_failback_after_s: float = 60.0
    # Scaling groups (edgeplane.scaling): seconds between two passes of the controller over
    # every group (metrics read, size decided, instances moved along their steps).
    scaling_interval_s: float = 2.0
    # Replicas of the control plane (services.runner): the background jobs run on the holder
    # of the runner lease, which lasts this long unless renewed (every ``leader_renew_s``); a
    # dead holder's jobs resume elsewhere within the sum.
    leader_ttl_s: float = 3.0
    leader_renew_s: float = 1.0
    # Security scores (services.security_scores, docs/security-score.md): how often every
    # active domain is probed from outside on every live node, how long evaluations are kept,
    # roots to trust besides the system's and the internal CA's (a PEM file), the probe's
    # timeout per connection and how many domains are probed at once. The surface scan of the
    # edge nodes (services.node_surface): how often, extra ports ("8000,9000-9010") besides the
    # well-known range and the nodes' own, the connect timeout and how many at once.
    security_score_interval_s: float = 3600.0
    security_score_retention_s: float = 90 * 86400.0
    security_trust_file: str | None = None
    security_probe_timeout_s: float = 3.0
    security_probe_concurrency: int = 4
    security_scan_interval_s: float = 3600.0
    security_scan_ports: str = ""
    security_scan_timeout_s: float = 0.5
    security_scan_concurrency: int = 64
    # How big an uploaded bundle may be (EDGEPLANE_BUNDLE_MAX_BYTES, _MAX_FILE_BYTES, _MAX_FILES).
    bundle_limits: bundle_limits.BundleLimits = field(default_factory=bundle_limits.BundleLimits)

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        env = os.environ
        base = cls(
            database_url=env.get("EDGEPLANE_DATABASE_URL") or None,
            geoip_db=env.get("EDGEPLANE_GEOIP_DB") or None,
            url=env.get("EDGEPLANE_URL") or None,
            token=env.get("EDGEPLANE_TOKEN") or None,
            secret_key=env.get("EDGEPLANE_SECRET_KEY") or None,
            bundle_limits=bundle_limits.from_env(env),
        )
        dns: dict[str, object] = {}
        if env.get("EDGEPLANE_DNS_RESOLVERS"):
            dns["dns_resolvers"] = tuple(
                r.strip() for r in env["EDGEPLANE_DNS_RESOLVERS"].split(",") if r.strip()
            )
        for var, key, kind in _ENV_FIELDS:
            if env.get(var):
                dns[key] = kind(env[var])
        base = replace(base, **dns)  # type: ignore[arg-type]
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
    def ocsp_url(self) -> str | None:
        """The internal CA's OCSP responder (``api.routers.ocsp``) that its certificates name:
        with ``internal_ocsp`` on and the public URL known."""
        if not (self.internal_ocsp and self.public_url):
            return None
        return f"{self.public_url.rstrip('/')}/ocsp"

    @property
    def secret_key_path(self) -> Path:
        return self.home / "secret.key"

    @property
    def admin_token_path(self) -> Path:
        return self.home / "admin-token"

    @property
    def metrics_token_path(self) -> Path:
        """The scrape token of ``edgeplane up``: the control plane's and its node's."""
        return self.home / "metrics-token"
