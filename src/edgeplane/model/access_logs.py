"""Access logs as people read them: the latest requests of a domain, as the edge served them."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from edgeplane.model.common import Output


class AccessLogEntry(Output):
    id: int = Field(description="increasing in the order the lines reached the control plane")
    at: datetime = Field(description="when the edge node logged the request (to the second)")
    node: str = Field(description="the edge node's name (its id once the node is deleted)")
    node_id: str
    domain: str
    method: str
    path: str = Field(description="the request URI with its query string (2,000 chars at most)")
    status: int
    bytes_sent: int
    cache: str | None = Field(description="X-Cache-Status: HIT, MISS, BYPASS, STATIC, ...")
    client: str = Field(description="the client's address")
    request_ms: float | None
    upstream_ms: float | None = Field(description="time at the origin; None: not asked")
    user_agent: str | None


class AccessLogPage(Output):
    domain: str
    lines: list[AccessLogEntry] = Field(
        description="newest first; with `after`, the lines after it, oldest first"
    )
    next_after: int = Field(
        description="give it as `after` to get only lines that arrive later (`--follow`)"
    )
