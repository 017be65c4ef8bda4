"""What people read of edge functions at work: their console lines and their invocations."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from edgeplane.model.common import Output
from edgeplane.model.enums import RegionCode, RegionType

LogLevel = Literal["debug", "log", "info", "warn", "error"]


class FunctionLogEntry(Output):
    id: int = Field(description="increasing in the order the lines reached the control plane")
    at: datetime = Field(description="when the function wrote it (the runtime's clock)")
    node: str = Field(description="the edge node's name (its id once the node is deleted)")
    node_id: str
    version: int | None = Field(description="the function's version that wrote it")
    level: LogLevel
    message: str = Field(description="2,048 characters at most (the runtime cuts longer ones)")
    request_id: str | None = Field(description="the request's id (X-Request-Id), if any")


class FunctionLogPage(Output):
    function: str
    items: list[FunctionLogEntry] = Field(
        description="newest first; with `after`, the lines after it, oldest first"
    )
    next_after: int = Field(
        description="give it as `after` to get only lines that arrive later (`--follow`)"
    )


class FunctionInvocations(Output):
    """A function's invocations over a period, in a region or in total."""

    invocations: int
    errors: dict[str, int] = Field(
        description="failed invocations by outcome: exception, timeout, memory, unavailable"
    )
    error_count: int
    error_rate: float | None = Field(description="percent of the invocations that failed")
    statuses: dict[str, int] = Field(default_factory=dict, description='{"2xx": n, ...}')
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None


class FunctionRegionMetrics(FunctionInvocations):
    region: str  # a location
    region_code: RegionCode | None = None  # its parents
    region_type: RegionType | None = None


class FunctionMetrics(Output):
    function: str
    start: datetime
    end: datetime
    total: FunctionInvocations
    regions: list[FunctionRegionMetrics]
