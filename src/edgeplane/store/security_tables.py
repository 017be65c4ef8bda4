"""The tables of security scores, compliance and the edge nodes' exposed surface.

Scores, compliance states and scans are observations (no revision); a compliance policy is a
setting of the project (its changes are recorded in the audit trail like alert rules').
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from edgeplane.store.tables import Base, utcnow


class SecurityScoreRow(Base):
    """One evaluation of a domain's security score, with its whole score card."""

    __tablename__ = "security_scores"
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    project_id: Mapped[str] = mapped_column(String(63))
    domain: Mapped[str] = mapped_column(String(255))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    score: Mapped[float] = mapped_column(Float)
    grade: Mapped[str] = mapped_column(String(2))
    failing: Mapped[list[str]] = mapped_column(default=list)  # check ids not passed
    card: Mapped[dict[str, Any]] = mapped_column(default=dict)  # ScoreCard, as JSON

    __table_args__ = (
        Index("ix_security_scores_domain_at", "project_id", "domain", "at"),
        Index("ix_security_scores_at", "at"),
    )


class CompliancePolicyRow(Base):
    __tablename__ = "compliance_policies"
    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    requirements: Mapped[list[Any]] = mapped_column(default=list)  # [Requirement, ...]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ComplianceStateRow(Base):
    """Where one requirement of the project's policy stands for one domain, and since when."""

    __tablename__ = "compliance_states"
    project_id: Mapped[str] = mapped_column(String(63), primary_key=True)
    domain: Mapped[str] = mapped_column(String(255), primary_key=True)
    requirement: Mapped[str] = mapped_column(String(63), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON, nullable=True, default=None)  # the requirement's
    status: Mapped[str] = mapped_column(String(16))  # pass / fail / unknown
    evidence: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    since: Mapped[datetime] = mapped_column(default=utcnow)  # the status last changed
    checked_at: Mapped[datetime] = mapped_column(default=utcnow)


class NodeSurfaceRow(Base):
    """The newest scan of an edge node's address."""

    __tablename__ = "node_surface"
    node_id: Mapped[str] = mapped_column(
        ForeignKey("edge_nodes.id", ondelete="CASCADE"), primary_key=True
    )
    address: Mapped[str | None] = mapped_column(String(255))
    scanned_at: Mapped[datetime] = mapped_column(default=utcnow)
    ports_scanned: Mapped[int] = mapped_column(Integer, default=0)
    open_ports: Mapped[list[Any]] = mapped_column(default=list)
    findings: Mapped[list[Any]] = mapped_column(default=list)  # [PortFinding, ...]
    unexpected: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, default=None)
