"""What the edge nodes observe of edge functions: invocations per minute (rolled up per hour)
and the functions' console lines (``edgeplane.services.function_obs``).

Observations, not desired state: writing them bumps no revision. They are keyed by the
function's project and name, not by a foreign key; deleting a function deletes them
(``services.functions.delete``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from edgeplane.store.tables import Base


class FunctionTrafficColumns:
    """A node's invocations of a function in a period (a minute, an hour)."""

    invocations: Mapped[int] = mapped_column(BigInteger, default=0)
    # the invocations that failed, by outcome: {"exception": n, "timeout": n, "memory": n,
    # "unavailable": n}
    errors: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    statuses: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # {"2xx": n, ...}
    # counts per bucket of protocol.messages.UPSTREAM_MS_BUCKETS (+1): whole-request times
    duration_ms: Mapped[list[int]] = mapped_column(JSON, default=list)


class FunctionMinuteRow(FunctionTrafficColumns, Base):
    """One node's invocations of one function in one minute (replaced as the minute fills)."""

    __tablename__ = "function_minutes"
    node_id: Mapped[str] = mapped_column(String(63), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(63), primary_key=True)
    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    minute: Mapped[datetime] = mapped_column(primary_key=True)

    __table_args__ = (Index("ix_function_minutes_project_minute", "project_id", "minute"),)


class FunctionHourRow(FunctionTrafficColumns, Base):
    """One node's invocations of one function in one hour: the minutes rolled up."""

    __tablename__ = "function_hours"
    node_id: Mapped[str] = mapped_column(String(63), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(63), primary_key=True)
    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    hour: Mapped[datetime] = mapped_column(primary_key=True)

    __table_args__ = (Index("ix_function_hours_project_hour", "project_id", "hour"),)


class FunctionLogRow(Base):
    """A line a function wrote to its console on an edge node (the latest kept per function)."""

    __tablename__ = "function_logs"
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    project_id: Mapped[str] = mapped_column(String(63))
    name: Mapped[str] = mapped_column(String(63))
    version: Mapped[int | None] = mapped_column(Integer, default=None)
    node_id: Mapped[str] = mapped_column(String(63))
    at: Mapped[datetime] = mapped_column()
    level: Mapped[str] = mapped_column(String(8))
    message: Mapped[str] = mapped_column(Text, default="")
    request_id: Mapped[str | None] = mapped_column(String(64), default=None)

    __table_args__ = (
        Index("ix_function_logs_function", "project_id", "name", "id"),
        Index("ix_function_logs_at", "at"),
    )
