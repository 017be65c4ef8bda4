"""The WAF matches the edge nodes report (observations, kept ``waf_match_retention_s``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from edgeplane.store.tables import Base


class WafMatchRow(Base):
    """One request that matched WAF rules on a node."""

    __tablename__ = "waf_matches"
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    project_id: Mapped[str] = mapped_column(String(63))
    domain: Mapped[str] = mapped_column(String(253))
    node_id: Mapped[str] = mapped_column(String(63))
    request_id: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column()
    method: Mapped[str] = mapped_column(String(16))
    uri: Mapped[str] = mapped_column(Text)
    client: Mapped[str] = mapped_column(String(64), default="")
    rules: Mapped[list[Any]] = mapped_column(JSON)  # [{rule, message, data, severity}]
    rule_ids: Mapped[str] = mapped_column(Text)  # ",942100,949110,": filtered with LIKE
    anomaly_score: Mapped[int | None] = mapped_column(Integer, default=None)
    action: Mapped[str] = mapped_column(String(16))
    status: Mapped[int | None] = mapped_column(Integer, default=None)

    __table_args__ = (
        Index("ix_waf_matches_project", "project_id", "id"),
        Index("ix_waf_matches_request", "project_id", "request_id"),
        Index("ix_waf_matches_at", "at"),
    )
