"""The tables of the desired state, the audit trail and access control."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps stored in UTC and always read back timezone-aware (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime,
        dict[str, Any]: JSON,
        list[str]: JSON,
        list[Any]: JSON,
    }


class Timestamps:
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class RevisionRow(Base):
    """A single row: the monotonic revision of the desired state."""

    __tablename__ = "revision"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)


class ProjectRow(Base):
    __tablename__ = "projects"
    id: Mapped[str] = mapped_column(String(63), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TokenRow(Base):
    __tablename__ = "api_tokens"
    id: Mapped[str] = mapped_column(String(63), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200))
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    # "api": the REST API by roles; "edge": the edge protocol only (/api/v1/edge/...).
    scope: Mapped[str] = mapped_column(String(16), default="api")
    # Access (edgeplane.services.access): scopes (None: the roles alone), expiry, the secret
    # before the last rotation (valid until previous_expires_at) and the owning service
    # account (edgeplane.store.access_tables).
    scopes: Mapped[list[str] | None] = mapped_column(JSON(none_as_null=True), default=None)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    previous_secret_hash: Mapped[str | None] = mapped_column(String(64), default=None, index=True)
    previous_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    rotated_at: Mapped[datetime | None] = mapped_column(default=None)
    service_account_id: Mapped[str | None] = mapped_column(String(63), default=None, index=True)


class TokenRoleRow(Base):
    __tablename__ = "api_token_roles"
    token_id: Mapped[str] = mapped_column(
        ForeignKey("api_tokens.id", ondelete="CASCADE"), primary_key=True
    )
    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[str] = mapped_column(String(16))


class LoginRow(Base):
    """A login of the dashboard: a name and a password (scrypt) standing for a token whose
    secret nobody knows; the token holds the login's roles, and revoking it ends the login."""

    __tablename__ = "logins"
    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    token_id: Mapped[str] = mapped_column(
        ForeignKey("api_tokens.id", ondelete="CASCADE"), unique=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200))


class SessionRow(Base):
    """A signed-in browser: the hash of its cookie's secret, the token it acts as (the one it
    signed in with, or its login's) and the CSRF token its writes must carry."""

    __tablename__ = "sessions"
    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    token_id: Mapped[str] = mapped_column(
        ForeignKey("api_tokens.id", ondelete="CASCADE"), index=True
    )
    login: Mapped[str | None] = mapped_column(String(63), default=None)
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()


class AuditRow(Base):
    __tablename__ = "audit_events"
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    revision: Mapped[int] = mapped_column(BigInteger, index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(200))
    project_id: Mapped[str | None] = mapped_column(String(63), index=True)
    action: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[str] = mapped_column(String(200))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    __table_args__ = (Index("ix_audit_events_object", "kind", "object_id"),)


class RegionRow(Timestamps, Base):
    __tablename__ = "regions"
    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    latitude: Mapped[float] = mapped_column(Float)
    longitude: Mapped[float] = mapped_column(Float)
    area: Mapped[str] = mapped_column(String(32))  # the region type (spec 000)
    region_code: Mapped[str] = mapped_column(String(8))  # the region code (spec 001)


class CapacityColumns:
    cpu: Mapped[float] = mapped_column(Float)
    memory: Mapped[float] = mapped_column(Float)
    storage: Mapped[float] = mapped_column(Float)


class DataCenterRow(Timestamps, CapacityColumns, Base):
    __tablename__ = "data_centers"
    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[str] = mapped_column(String(63), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    region: Mapped[str] = mapped_column(String(16))
    location: Mapped[str] = mapped_column(ForeignKey("regions.code"), index=True)
    tier: Mapped[int] = mapped_column(Integer)
    environment: Mapped[str] = mapped_column(String(16))


class ServerRow(Timestamps, CapacityColumns, Base):
    __tablename__ = "servers"
    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[str] = mapped_column(String(63), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(16))
    region: Mapped[str] = mapped_column(String(32))
    location: Mapped[str] = mapped_column(ForeignKey("regions.code"))
    profile: Mapped[str] = mapped_column(String(63))
    status: Mapped[str] = mapped_column(String(16))
    data_center_id: Mapped[str | None] = mapped_column(String(63))
    address: Mapped[str | None] = mapped_column(String(255))
    environment: Mapped[str] = mapped_column(String(16))
    labels: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Latest observation, kept beside the row so routing reads one table.
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    metrics_at: Mapped[datetime | None] = mapped_column(default=None)
    cpu_percent: Mapped[float | None] = mapped_column(Float, default=None)
    memory_percent: Mapped[float | None] = mapped_column(Float, default=None)
    storage_percent: Mapped[float | None] = mapped_column(Float, default=None)

    __table_args__ = (
        ForeignKeyConstraint(
            ["project_id", "data_center_id"],
            ["data_centers.project_id", "data_centers.id"],
            name="fk_servers_data_center",
        ),
        Index("ix_servers_location", "project_id", "location", "status"),
        Index("ix_servers_data_center", "project_id", "data_center_id"),
    )


class ServiceRow(Timestamps, CapacityColumns, Base):
    __tablename__ = "services"
    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[str] = mapped_column(String(63), primary_key=True)
    server_id: Mapped[str] = mapped_column(String(63))
    type: Mapped[str] = mapped_column(String(32))
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16))

    __table_args__ = (
        ForeignKeyConstraint(
            ["project_id", "server_id"],
            ["servers.project_id", "servers.id"],
            name="fk_services_server",
        ),
        # Routing probes "does this server offer an active service of this type" per server.
        Index("ix_services_server", "project_id", "server_id", "type", "status"),
        Index("ix_services_type", "project_id", "type", "status"),
    )


class MetricRow(Base):
    __tablename__ = "server_metrics"
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    project_id: Mapped[str] = mapped_column(String(63))
    server_id: Mapped[str] = mapped_column(String(63))
    at: Mapped[datetime] = mapped_column()
    values: Mapped[dict[str, Any]] = mapped_column(JSON)

    __table_args__ = (
        ForeignKeyConstraint(
            ["project_id", "server_id"],
            ["servers.project_id", "servers.id"],
            ondelete="CASCADE",
            name="fk_server_metrics_server",
        ),
        Index("ix_server_metrics_server_at", "project_id", "server_id", "at"),
    )


class LoadBalancerRow(Timestamps, Base):
    __tablename__ = "load_balancers"
    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[str] = mapped_column(String(63), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    algorithm: Mapped[str] = mapped_column(String(16))
    region: Mapped[str | None] = mapped_column(String(16))
    endpoints: Mapped[list[str]] = mapped_column(JSON, default=list)
    # [{address, port, weight, backup, state}]; ``endpoints`` is their addresses, kept for
    # the operations guide's shape.
    backends: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    health_check: Mapped[dict[str, Any]] = mapped_column(JSON)
    # connect_timeout_s, read_timeout_s, retries
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    environment: Mapped[str] = mapped_column(String(16))


class DRConfigRow(Timestamps, Base):
    __tablename__ = "dr_configs"
    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[str] = mapped_column(String(63), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    primary_dc: Mapped[str] = mapped_column(String(63))
    backup_dc: Mapped[str] = mapped_column(String(63))
    rpo: Mapped[float] = mapped_column(Float)  # minutes
    rto: Mapped[float] = mapped_column(Float)  # minutes
    environment: Mapped[str] = mapped_column(String(16))
    # automatic: the monitor switches at once; confirmed: it waits for an operator
    failover_mode: Mapped[str] = mapped_column(String(16), default="automatic")
    failback_mode: Mapped[str] = mapped_column(String(16), default="automatic")
    # days between scheduled drills (spec 004: monthly; None: none)
    drill_every_days: Mapped[int | None] = mapped_column(Integer, default=30)

    __table_args__ = (
        ForeignKeyConstraint(
            ["project_id", "primary_dc"],
            ["data_centers.project_id", "data_centers.id"],
            name="fk_dr_configs_primary_dc",
        ),
        ForeignKeyConstraint(
            ["project_id", "backup_dc"],
            ["data_centers.project_id", "data_centers.id"],
            name="fk_dr_configs_backup_dc",
        ),
    )


class DomainRow(Timestamps, Base):
    """A domain name served by a project; a name belongs to one project at a time."""

    __tablename__ = "domains"
    name: Mapped[str] = mapped_column(String(253), primary_key=True)
    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    environment: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    verified_at: Mapped[datetime | None] = mapped_column(default=None)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Ownership verification: token, method, expiry, hashed email code, last results.
    verification: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    locked: Mapped[bool] = mapped_column(Boolean, default=False)
    dnssec: Mapped[bool] = mapped_column(Boolean, default=False)
    dnssec_key_encrypted: Mapped[str | None] = mapped_column(Text, default=None)
    # The revision of the newest change to the zone's content: the SOA serial's basis.
    zone_revision: Mapped[int] = mapped_column(BigInteger, default=0)
    checks: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # last status checks


class DNSRecordRow(Timestamps, Base):
    """One RRset of a domain's zone as the user set it (owner relative to the zone)."""

    __tablename__ = "dns_records"
    domain: Mapped[str] = mapped_column(
        ForeignKey("domains.name", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(253), primary_key=True)  # "@", "www", "*.api"
    type: Mapped[str] = mapped_column(String(8), primary_key=True)
    ttl: Mapped[int] = mapped_column(Integer)
    values: Mapped[list[str]] = mapped_column(JSON, default=list)
    proxied: Mapped[bool] = mapped_column(Boolean, default=False)


class AcmeChallengeRow(Base):
    """An ACME challenge answer the edge publishes while an order runs: HTTP-01 (``name`` the
    token) on every node's HTTP port, DNS-01 (``name`` the TXT owner) in the domain's zone."""

    __tablename__ = "acme_challenges"
    id: Mapped[str] = mapped_column(String(63), primary_key=True)
    domain: Mapped[str] = mapped_column(ForeignKey("domains.name", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(8))  # http-01 / dns-01
    name: Mapped[str] = mapped_column(String(255))
    value: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class EdgeLivenessRow(Base):
    """Which edge nodes answer for their region (heartbeat fresh and healthy): GeoDNS sends
    clients only to these. Changed by the control plane's liveness monitor."""

    __tablename__ = "edge_liveness"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    live: Mapped[list[str]] = mapped_column(JSON, default=list)  # node ids, sorted
    revision: Mapped[int] = mapped_column(BigInteger, default=0)
    changed_at: Mapped[datetime | None] = mapped_column(default=None)


class CertificateRow(Timestamps, Base):
    __tablename__ = "certificates"
    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[str] = mapped_column(String(63), primary_key=True)
    domain: Mapped[str] = mapped_column(String(253), index=True)
    issuer: Mapped[str] = mapped_column(String(32))  # internal / lets_encrypt / custom / ...
    names: Mapped[list[str]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))
    cert_pem: Mapped[str] = mapped_column(Text)
    key_encrypted: Mapped[str] = mapped_column(Text)  # the private key, encrypted at rest
    not_before: Mapped[datetime] = mapped_column()
    not_after: Mapped[datetime] = mapped_column()
    auto_renew: Mapped[bool] = mapped_column(Boolean, default=True)
    # Renewal bookkeeping: attempts, next_attempt_at, last_error, renewed_by, ari_*.
    renewal: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class OcspStapleRow(Base):
    """The OCSP response the edge staples for a certificate version (``certificates.stapling``):
    fetched by the control plane from the URL in the leaf, verified, refreshed at half its
    validity. ``ocsp_url`` is empty for a certificate without one (never fetched)."""

    __tablename__ = "ocsp_staples"
    project_id: Mapped[str] = mapped_column(String(63), primary_key=True)
    certificate_id: Mapped[str] = mapped_column(String(63), primary_key=True)
    ocsp_url: Mapped[str] = mapped_column(Text, default="")
    response: Mapped[str | None] = mapped_column(Text, default=None)  # base64 DER, verified
    cert_status: Mapped[str | None] = mapped_column(String(16), default=None)  # good / revoked
    this_update: Mapped[datetime | None] = mapped_column(default=None)
    next_update: Mapped[datetime | None] = mapped_column(default=None)
    fetched_at: Mapped[datetime | None] = mapped_column(default=None)
    next_fetch_at: Mapped[datetime | None] = mapped_column(default=None, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # failed fetches in a row
    last_error: Mapped[str | None] = mapped_column(Text, default=None)

    __table_args__ = (
        ForeignKeyConstraint(
            ["project_id", "certificate_id"],
            ["certificates.project_id", "certificates.id"],
            ondelete="CASCADE",
        ),
    )


class IssuedSerialRow(Base):
    """Every leaf the internal CA issued (by serial, hex), for its OCSP responder: kept when the
    certificate is deleted (then revoked), so a serial is never answered "unknown" by mistake."""

    __tablename__ = "internal_ca_serials"
    serial: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(63))
    certificate_id: Mapped[str] = mapped_column(String(63))
    not_after: Mapped[datetime] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)
    revocation_reason: Mapped[str | None] = mapped_column(String(32), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AlertRow(Base):
    """Something an operator should know: an incident of an alert rule (``kind`` "rule",
    ``rule_id``: firing, then resolved), or an event raised once per (kind, object, key)."""

    __tablename__ = "alerts"
    id: Mapped[str] = mapped_column(String(63), primary_key=True)
    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(63))
    object_id: Mapped[str] = mapped_column(String(255))
    key: Mapped[str] = mapped_column(String(63))
    severity: Mapped[str] = mapped_column(String(16))  # info / warning / critical
    message: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    delivered_at: Mapped[datetime | None] = mapped_column(default=None)
    delivery_error: Mapped[str | None] = mapped_column(Text, default=None)
    rule_id: Mapped[str | None] = mapped_column(String(63), default=None)
    state: Mapped[str] = mapped_column(String(16), default="firing")  # firing / resolved
    value: Mapped[float | None] = mapped_column(Float, default=None)
    threshold: Mapped[float | None] = mapped_column(Float, default=None)
    started_at: Mapped[datetime | None] = mapped_column(default=None)  # the breach began
    resolved_at: Mapped[datetime | None] = mapped_column(default=None)
    acknowledged_at: Mapped[datetime | None] = mapped_column(default=None)
    acknowledged_by: Mapped[str | None] = mapped_column(String(200), default=None)

    __table_args__ = (
        UniqueConstraint("kind", "object_id", "key", name="uq_alerts_kind_object_key"),
    )


class SecretRow(Base):
    """Platform secrets that must survive restarts (the internal CA), encrypted at rest."""

    __tablename__ = "secrets"
    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    value_encrypted: Mapped[str] = mapped_column(Text)
    public: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CDNConfigRow(Timestamps, Base):
    """A project's edge configuration: origins, cache rules, security."""

    __tablename__ = "cdn_configs"
    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    origins: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    cache_rules: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    security: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    environment: Mapped[str] = mapped_column(String(16))


class EdgeNodeRow(Base):
    __tablename__ = "edge_nodes"
    id: Mapped[str] = mapped_column(String(63), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    region: Mapped[str] = mapped_column(String(32))
    address: Mapped[str | None] = mapped_column(String(255))
    http_port: Mapped[int | None] = mapped_column(Integer)
    https_port: Mapped[int | None] = mapped_column(Integer)
    # its DNS port, and the ports of its own services (metrics, its DNS server's API...) that
    # belong on loopback, as it registered them: what the surface scan expects
    dns_port: Mapped[int | None] = mapped_column(Integer, default=None)
    local_ports: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    token_id: Mapped[str | None] = mapped_column(String(63))
    version: Mapped[str | None] = mapped_column(String(32))
    protocol: Mapped[int] = mapped_column(Integer, default=1)  # its edge protocol version
    # the snapshot's fields its agent ignored, not knowing them (its last ack)
    ignored_fields: Mapped[list[str]] = mapped_column(JSON, default=list)
    registered_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime | None] = mapped_column(default=None)
    applied_revision: Mapped[int | None] = mapped_column(BigInteger, default=None)
    applied_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    applied_at: Mapped[datetime | None] = mapped_column(default=None)
    apply_ms: Mapped[float | None] = mapped_column(Float, default=None)
    propagation_ms: Mapped[float | None] = mapped_column(Float, default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    failed_revision: Mapped[int | None] = mapped_column(BigInteger, default=None)
    stats: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    heartbeat_at: Mapped[datetime | None] = mapped_column(default=None)
    healthy: Mapped[bool] = mapped_column(Boolean, default=True)
    # {"error", "reason"} of its DNS engine; the serials it serves: ``EdgeZoneSerialRow``
    dns: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # site -> {"deployment", "bundle", "state": active|failed, "error", "at"}: what it serves
    bundles: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # it can run edge functions (its runtime was found; protocol 3)
    functions: Mapped[bool] = mapped_column(Boolean, default=False)
    # "<project>/<name>" -> {"version_id", "version", "state", "error", "at"}: its last report
    function_reports: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class EdgeZoneSerialRow(Base):
    """The serial of a zone an edge node serves, as its heartbeats report: a row per zone, so
    that a heartbeat with one changed serial writes one row (a JSON document of 10,000
    serials per node was read and written again at every heartbeat)."""

    __tablename__ = "edge_zone_serials"
    node_id: Mapped[str] = mapped_column(
        ForeignKey("edge_nodes.id", ondelete="CASCADE"), primary_key=True
    )
    zone: Mapped[str] = mapped_column(String(255), primary_key=True, index=True)  # "x.org."
    serial: Mapped[int] = mapped_column(BigInteger)


class BackendHealthRow(Base):
    """What one edge node last saw of one backend of one pool."""

    __tablename__ = "backend_health"
    node_id: Mapped[str] = mapped_column(
        ForeignKey("edge_nodes.id", ondelete="CASCADE"), primary_key=True
    )
    pool: Mapped[str] = mapped_column(String(200), primary_key=True)
    backend: Mapped[str] = mapped_column(String(300), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(63), index=True)
    state: Mapped[str] = mapped_column(String(16))  # up / down / unknown
    reason: Mapped[str] = mapped_column(Text, default="")
    checked_at: Mapped[datetime | None] = mapped_column(default=None)
    changed_at: Mapped[datetime | None] = mapped_column(default=None)
    latency_ms: Mapped[float | None] = mapped_column(Float, default=None)


class PurgeRow(Base):
    __tablename__ = "purges"
    id: Mapped[str] = mapped_column(String(63), primary_key=True)
    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    paths: Mapped[list[str]] = mapped_column(JSON, default=list)
    purge_all: Mapped[bool] = mapped_column(Boolean, default=False)
    revision: Mapped[int | None] = mapped_column(BigInteger, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    created_by: Mapped[str] = mapped_column(String(200))


class PurgeAckRow(Base):
    __tablename__ = "purge_acks"
    purge_id: Mapped[str] = mapped_column(
        ForeignKey("purges.id", ondelete="CASCADE"), primary_key=True
    )
    node_id: Mapped[str] = mapped_column(
        ForeignKey("edge_nodes.id", ondelete="CASCADE"), primary_key=True
    )
    completed_at: Mapped[datetime] = mapped_column()
    purged_count: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, default=None)


class TrafficColumns:
    """A node's traffic for a domain in a period (a minute, an hour)."""

    project_id: Mapped[str] = mapped_column(String(63))
    requests: Mapped[int] = mapped_column(BigInteger, default=0)
    hits: Mapped[int] = mapped_column(BigInteger, default=0)
    misses: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes_out: Mapped[int] = mapped_column(BigInteger, default=0)
    statuses: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # {"2xx": n, ...}
    cache: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # {"HIT": n, ...}
    upstream_ms: Mapped[list[int]] = mapped_column(JSON, default=list)  # histogram counts
    request_ms: Mapped[list[int]] = mapped_column(JSON, default=list)  # histogram counts
    static: Mapped[int] = mapped_column(BigInteger, default=0)  # served from a bundle
    countries: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # {"DE": n, ...}
    static_bytes: Mapped[int] = mapped_column(BigInteger, default=0)  # of ``static``
    # refused by the edge itself: {"rate_limit": n (429), "denied": n (403, IP lists)}
    blocked: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # the requests each backend of the site's pool answered: {backend key: n}
    backends: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # bots by the edge's verdict: {"<class>:<action>": n} (node/agent/bots.py)
    bots: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class EdgeAnalyticsRow(TrafficColumns, Base):
    """One node's traffic for one domain in one minute (replaced as the minute fills)."""

    __tablename__ = "edge_analytics"
    node_id: Mapped[str] = mapped_column(String(63), primary_key=True)
    domain: Mapped[str] = mapped_column(String(253), primary_key=True)
    minute: Mapped[datetime] = mapped_column(primary_key=True)

    __table_args__ = (Index("ix_edge_analytics_project_minute", "project_id", "minute"),)


class BundleRow(Base):
    """An uploaded static bundle, content-addressed: ``id`` is the sha256 of the node archive
    (the files, their gzip and brotli variants and the manifest), kept in ``bundle_chunks``."""

    __tablename__ = "bundles"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    size: Mapped[int] = mapped_column(BigInteger)  # the node archive's bytes
    source_bytes: Mapped[int] = mapped_column(BigInteger)  # the files' own bytes
    files: Mapped[int] = mapped_column(Integer)
    manifest: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200))


class BundleChunkRow(Base):
    """A slice of a node archive: the archive is ``data`` of its chunks in ``seq`` order."""

    __tablename__ = "bundle_chunks"
    bundle_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class EdgeDeploymentRow(Base):
    """A version of a project's static site on the edge: a bundle in a set of regions."""

    __tablename__ = "edge_deployments"
    id: Mapped[str] = mapped_column(String(63), primary_key=True)
    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    version: Mapped[int] = mapped_column(Integer)
    bundle_id: Mapped[str] = mapped_column(String(64))
    strategy: Mapped[str] = mapped_column(String(16))
    regions: Mapped[list[str]] = mapped_column(JSON, default=list)  # chosen, sorted
    request: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # as asked
    placement: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # why these
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # spa, paths, check
    # pending -> canary -> rolling -> active -> superseded; failed / rolled_back end it early
    status: Mapped[str] = mapped_column(String(16), index=True)
    canary_node: Mapped[str | None] = mapped_column(String(63), default=None)
    phase_at: Mapped[datetime | None] = mapped_column(default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    reactivates: Mapped[str | None] = mapped_column(String(63), default=None)
    changed_revision: Mapped[int] = mapped_column(BigInteger, default=0)  # of the status
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(200))
    activated_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)

    __table_args__ = (
        UniqueConstraint("project_id", "version", name="uq_edge_deployments_project_version"),
    )
