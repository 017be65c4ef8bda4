"""The edge protocol: what an agent sends to the control plane and what it gets back.

Every call is made with a token of scope ``edge`` (``edgeplane token create --edge``), which
authenticates the edge protocol and nothing else:

- ``POST /api/v1/edge/nodes`` (``NodeRegister``) -> ``EdgeNode``; registering a name again
  updates that node (an agent restarted keeps its id).
- ``GET /api/v1/edge/nodes/{id}/config?after=REV&wait=SECONDS`` -> ``ConfigPoll``: at once when
  the revision is newer than ``after`` or a purge is pending for the node, else when one
  arrives, else after ``wait`` seconds (default 25) with ``config: null``. With ``refs=true``
  the snapshot comes as ``manifest`` (zones and certificates by reference) instead of
  ``config``; with ``refs=true&have=HASH`` (the hash of the manifest of revision ``after`` the
  node holds) as ``delta``, the changes from that manifest, when the control plane still
  has it (``edgeplane.protocol.delta``);
- ``POST /api/v1/edge/nodes/{id}/objects`` (``ObjectsRequest``) -> ``ObjectsAnswer``: the
  bodies of the objects a manifest names, by hash (only the node's own token; an unknown
  hash is refused with 404 naming it).
- ``POST /api/v1/edge/nodes/{id}/ack`` (``Ack``) after each apply, successful or not.
- ``POST /api/v1/edge/nodes/{id}/health`` (``HealthReport``) when backend states change (and
  at least every 30 s).
- ``POST /api/v1/edge/nodes/{id}/purges/{purge_id}`` (``PurgeAck``) when a purge is done.
- ``POST /api/v1/edge/nodes/{id}/analytics`` (``AnalyticsReport``): totals per domain and
  minute; a minute sent again replaces what was sent before for it.
- ``POST /api/v1/edge/nodes/{id}/logs`` (``AccessLogReport``): the newest access log lines
  per domain since the last report (bounded), sent right after the analytics; an older
  control plane answers 404 and the agent stops sending them for a while.
- ``POST /api/v1/edge/nodes/{id}/uptime`` (``UptimeReport``): the uptime checks' state changes
  (at once) and each hour's totals per domain (with the analytics).
- ``POST /api/v1/edge/nodes/{id}/function-traffic`` (``FunctionTrafficReport``): the edge
  functions' invocations per function and minute (from the access log lines that carry
  ``fn``), a minute sent again replacing what was sent before for it; and
  ``POST /api/v1/edge/nodes/{id}/function-logs`` (``FunctionLogReport``): the functions'
  console lines since the last report (bounded). Both right after the analytics; an older
  control plane answers 404 and the agent stops sending them for a while.

Versions (``edgeplane.protocol.versions``): every call carries the agent's protocol version in
the ``Edgeplane-Protocol`` header, every answer the control plane's. What an agent sends
(``AgentMessage``) may hold fields the control plane does not know: they are ignored, so that
an agent upgraded before its control plane is still heard (``ObjectsRequest`` excepted: a list
of hashes, strict).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer

from edgeplane.model.common import (
    Bool,
    Float,
    Input,
    Int,
    MultilineText,
    Output,
    Text,
)
from edgeplane.model.enums import RegionCode, RegionType
from edgeplane.model.regions import RegionRef
from edgeplane.protocol.config import EdgeConfig, EdgeManifest
from edgeplane.protocol.delta import ManifestDelta
from edgeplane.protocol.lenient import MAX_PATH_LENGTH, MAX_PATHS

# Upper bounds (ms) of the upstream time histogram of the analytics; the last bucket is
# "above the last bound". Percentiles are read from the merged histogram.
UPSTREAM_MS_BUCKETS: tuple[float, ...] = (
    1, 2, 3, 5, 7, 10, 15, 20, 30, 50, 70, 100, 150, 200, 300, 500, 700, 1000, 1500, 2000,
    3000, 5000, 10000, 30000,
)  # fmt: skip


class AgentMessage(Input):
    """What an agent sends: its fields checked as any input's, but fields the control plane
    does not know (those of a newer agent) ignored rather than refused."""

    model_config = ConfigDict(extra="ignore")


class NodeRegister(AgentMessage):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,62}$")
    region: RegionRef = Field(
        description="the node's location (e.g. eu-central); a region code or type is refused "
        "with the locations it could be"
    )
    address: Text | None = Field(None, description="the address clients reach this node at")
    http_port: Int | None = Field(None, ge=1, le=65535)
    https_port: Int | None = Field(None, ge=1, le=65535)
    # Added with the surface scan (absent from older agents): the DNS port clients query, and
    # the ports of the node's own services that belong on loopback ({"metrics": 9101, ...}).
    dns_port: Int | None = Field(None, ge=1, le=65535)
    local_ports: dict[Text, Int] = Field(default_factory=dict, max_length=20)
    version: Text | None = None
    protocol: Int = Field(
        1, ge=1, le=999_999, description="the edge protocol version the agent speaks (absent: 1)"
    )
    # Version 3: the node can run edge functions (its runtime was found).
    functions: Bool = False


class EdgeNode(Output):
    id: str
    name: str
    region: str  # the node's location
    region_code: RegionCode | None = None  # the location's parents
    region_type: RegionType | None = None
    address: str | None
    http_port: int | None
    https_port: int | None
    status: Literal["online", "offline"]  # online: seen within the last 60 s
    registered_at: datetime
    last_seen_at: datetime | None
    desired_revision: int  # the newest revision of the desired state
    applied_revision: int | None
    applied_hash: str | None
    applied_at: datetime | None
    in_sync: bool  # applied_hash is the hash of the node's current snapshot
    apply_ms: float | None  # the agent's render + check + swap + reload + probe
    propagation_ms: float | None  # commit of the applied revision -> its acknowledgement
    last_error: str | None
    failed_revision: int | None
    stats: dict[str, float] = Field(default_factory=dict)  # nginx_pss_mib, agent_rss_mib, ...
    live: bool = False  # heartbeat fresh and healthy: answered by GeoDNS
    heartbeat_at: datetime | None = None
    protocol: int = 1  # the edge protocol version it registered with (added in version 2)
    # the snapshot's fields its agent did not know and ignored, as its last ack said
    ignored_fields: list[str] = Field(default_factory=list)
    functions: bool = False  # it can run edge functions (added in version 3)


class PurgeTask(Output):
    """Remove cached objects of one site (project) on the node."""

    id: str
    site: str  # the project id: the first part of the site's cache keys
    paths: list[str] = Field(default_factory=list)  # exact paths, "/a/b"
    prefixes: list[str] = Field(default_factory=list)  # "/static/" for "/static/*"
    purge_all: bool = False


class ConfigPoll(Output):
    revision: int
    hash: str
    config: EdgeConfig | None  # None when not newer than ``after`` (or with ``refs``)
    purges: list[PurgeTask] = Field(default_factory=list)
    manifest: EdgeManifest | None = None  # with ``refs=true``, when newer than ``after``
    delta: ManifestDelta | None = None  # with ``have``: instead of ``manifest``


class ObjectsRequest(Input):
    hashes: list[str] = Field(
        min_length=1, max_length=5000, description="object hashes (sha256, hex) to fetch"
    )


class ObjectsAnswer(Output):
    """``hash -> object`` (a ``ZoneSpec`` or ``CertSpec`` as JSON); its sha256 is the hash."""

    objects: dict[str, dict[str, object]]


class Ack(AgentMessage):
    revision: Int
    hash: Text
    ok: Bool
    apply_ms: Float = Field(ge=0)
    error: MultilineText | None = Field(None, max_length=20000)
    stats: dict[Text, Float] = Field(default_factory=dict)
    # Version 2: the paths of the snapshot's fields the agent did not know and ignored
    # (``sites[].new_field``; ``edgeplane.protocol.lenient``).
    ignored: list[Annotated[Text, Field(max_length=MAX_PATH_LENGTH)]] = Field(
        default_factory=list, max_length=MAX_PATHS
    )


class BundleReport(AgentMessage):
    """What a node does with a site's bundle: ``fetching`` it, serving it (``active``, its
    check passed) or not (``failed``: fetch, verification, activation or check failed)."""

    deployment: Text = Field(max_length=63)
    bundle: str = Field(pattern=r"^[0-9a-f]{64}$")
    state: Literal["fetching", "active", "failed"]
    error: MultilineText | None = Field(None, max_length=4000)
    at: datetime | None = None


class FunctionReport(AgentMessage):
    """What a node does with a function version: ``loading`` it, serving it (``active``: it
    loaded, and its check path, if any, answered below 400) or not (``failed``)."""

    version_id: Text = Field(max_length=63)
    version: Int = Field(ge=1)
    state: Literal["loading", "active", "failed"]
    error: MultilineText | None = Field(None, max_length=4000)
    at: datetime | None = None


class Heartbeat(AgentMessage):
    """Sent by the agent every second or so: the node is alive; whether it serves (nginx and
    its DNS server running) and which zone serials its DNS server serves."""

    healthy: Bool = True
    reason: MultilineText | None = Field(None, max_length=2000)  # why not healthy
    # "example.com." -> serial; None: unchanged since the last heartbeat. With
    # ``dns_serials_partial`` only the zones that changed, serial 0 for a zone no longer served.
    dns_serials: dict[Text, Int] | None = Field(default_factory=dict)
    dns_serials_partial: Bool = False
    dns_error: MultilineText | None = Field(None, max_length=20000)  # the last refused zone change
    bundles: dict[Text, BundleReport] | None = Field(None, max_length=100_000)  # site -> report
    # Version 3: "<project>/<name>" -> the function version it runs; omitted when none.
    functions: dict[Text, FunctionReport] | None = Field(None, max_length=100_000)


class BackendState(AgentMessage):
    pool: Text
    backend: Text  # BackendSpec.key
    state: Literal["up", "down", "unknown"]
    reason: MultilineText = Field("", max_length=2000)
    checked_at: datetime | None = None
    changed_at: datetime | None = None
    latency_ms: Float | None = None


class HealthReport(AgentMessage):
    backends: list[BackendState] = Field(max_length=100_000)


class PurgeAck(AgentMessage):
    completed_at: datetime
    purged_count: Int = Field(ge=0)
    error: MultilineText | None = None


BlockedReason = Literal["rate_limit", "denied", "connection_limit", "timeout", "too_large"]


class MinuteTraffic(AgentMessage):
    site: Text
    domain: Text
    minute: datetime  # the minute's start, UTC
    requests: Int = Field(ge=0)
    hits: Int = Field(0, ge=0)
    misses: Int = Field(0, ge=0)
    bytes_out: Int = Field(0, ge=0)
    statuses: dict[Text, Int] = Field(default_factory=dict)  # "2xx": n
    cache: dict[Text, Int] = Field(default_factory=dict)  # "HIT": n, "MISS": n, ...
    upstream_ms: list[Int] = Field(default_factory=list)  # counts per UPSTREAM_MS_BUCKETS (+1)
    # Added with static bundles; the defaults keep the reports of older agents valid.
    request_ms: list[Int] = Field(default_factory=list)  # whole-request times, same buckets
    static: Int = Field(0, ge=0)  # served from a static bundle (also counted in hits)
    countries: dict[Text, Int] = Field(default_factory=dict)  # ISO code ("ZZ": unknown): n
    static_bytes: Int = Field(0, ge=0)  # bytes of the ``static`` responses
    # refused by the edge itself (no origin asked): "rate_limit" (429), "denied" (403),
    # "connection_limit" (503), "timeout" (408: a slow client), "too_large" (413, 431)
    blocked: dict[BlockedReason, Int] = Field(default_factory=dict)
    # the requests each backend of the site's pool answered (``BackendSpec.key``: n); the last
    # address of a retried request is the one that answered
    backends: dict[Text, Int] = Field(default_factory=dict)
    # the edge's bot verdicts ("<class>:<action>": n, node/agent/bots.py); left out when empty,
    # so that a report without bots is what control planes before them take
    bots: dict[Text, Int] = Field(default_factory=dict)

    @model_serializer(mode="wrap")
    def _without_empty_bots(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        doc: dict[str, Any] = handler(self)
        if not doc.get("bots"):
            doc.pop("bots", None)
        return doc


class AnalyticsReport(AgentMessage):
    minutes: list[MinuteTraffic] = Field(max_length=100_000)


# Access log samples (``edgeplane.node.agent.access_samples``): what a line keeps, at most.
ACCESS_LOG_PATH_MAX = 2000  # the request URI, query string included
ACCESS_LOG_AGENT_MAX = 512  # the user agent
ACCESS_LOG_REPORT_MAX = 20_000  # lines per report


class AccessLogLine(AgentMessage):
    """One request a node served, as its access log said (time to the second)."""

    site: Text = Field(min_length=1, max_length=63)  # the project id
    domain: Text = Field(min_length=1, max_length=253)  # the request's host
    at: datetime
    method: Text = Field("", max_length=16)
    path: Text = Field(max_length=ACCESS_LOG_PATH_MAX)  # $request_uri: with its query string
    status: Int = Field(ge=100, le=599)
    bytes_sent: Int = Field(0, ge=0)
    cache: Text | None = Field(None, max_length=16)  # X-Cache-Status (HIT, MISS, STATIC, ...)
    client: Text = Field("", max_length=64)  # the client's address
    request_ms: Float | None = Field(None, ge=0)
    upstream_ms: Float | None = Field(None, ge=0)  # every try added up; None: no upstream
    user_agent: Text | None = Field(None, max_length=ACCESS_LOG_AGENT_MAX)


class AccessLogReport(AgentMessage):
    lines: list[AccessLogLine] = Field(max_length=ACCESS_LOG_REPORT_MAX)
    dropped: Int = Field(0, ge=0)  # lines left out since the last report (over the bounds)


# WAF matches (``edgeplane.node.agent.waf_log``): what a match keeps, at most.
WAF_URI_MAX = 2000
WAF_MESSAGE_MAX = 300
WAF_DATA_MAX = 200  # what matched, truncated
WAF_RULES_MAX = 50  # rule matches per request
WAF_REPORT_MAX = 5000  # requests per report


class WafRuleHit(AgentMessage):
    rule: Int = Field(ge=1)
    message: Text = Field("", max_length=WAF_MESSAGE_MAX)
    data: Text | None = Field(None, max_length=WAF_DATA_MAX)
    severity: Text | None = Field(None, max_length=16)


class WafMatchLine(AgentMessage):
    """One request that matched WAF rules on a node (ModSecurity's audit log)."""

    request_id: Text = Field(min_length=1, max_length=64)
    site: Text = Field(min_length=1, max_length=63)  # the project id
    domain: Text = Field(min_length=1, max_length=253)
    at: datetime
    method: Text = Field("", max_length=16)
    uri: Text = Field("", max_length=WAF_URI_MAX)
    client: Text = Field("", max_length=64)
    rules: list[WafRuleHit] = Field(max_length=WAF_RULES_MAX)
    anomaly_score: Int | None = Field(None, ge=0)
    action: Literal["blocked", "detected"]
    status: Int | None = Field(None, ge=100, le=599)


class WafReport(AgentMessage):
    matches: list[WafMatchLine] = Field(max_length=WAF_REPORT_MAX)
    dropped: Int = Field(0, ge=0)  # matches left out since the last report (over the bounds)


class UptimeState(AgentMessage):
    """What a node's last check of one probe of a domain saw (``node.agent.uptime``)."""

    kind: Literal["http", "https", "dns"]
    target: Text = Field(min_length=1, max_length=253)  # the domain
    site: Text = Field(min_length=1, max_length=63)
    up: Bool
    error: MultilineText | None = Field(None, max_length=2000)
    latency_ms: Float | None = Field(None, ge=0)
    checked_at: datetime
    since: datetime  # when it last flipped (or was first checked)
    expires_at: datetime | None = None  # https: the certificate served for the domain


class UptimeHour(AgentMessage):
    """A node's checks of one domain in one hour (replaced as the hour fills)."""

    target: Text = Field(min_length=1, max_length=253)
    site: Text = Field(min_length=1, max_length=63)
    hour: datetime
    checks: Int = Field(ge=0)
    failures: Int = Field(ge=0)
    latency_ms_sum: Float = Field(0.0, ge=0)


class UptimeReport(AgentMessage):
    states: list[UptimeState] = Field(default_factory=list, max_length=100_000)
    hours: list[UptimeHour] = Field(default_factory=list, max_length=100_000)


# Edge functions (``edgeplane.node.agent.function_stats``): invocations per minute, console lines.
FUNCTION_KEY_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}/[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
FUNCTION_OUTCOMES = ("exception", "timeout", "memory", "unavailable")  # errors, by outcome
FUNCTION_LOG_LEVELS = ("debug", "log", "info", "warn", "error")
FUNCTION_LOG_MESSAGE_MAX = 2048  # the runtime's own bound (characters)
FUNCTION_LOG_REPORT_MAX = 50_000  # lines per report
FunctionOutcome = Literal["exception", "timeout", "memory", "unavailable"]
FunctionLogLevel = Literal["debug", "log", "info", "warn", "error"]


class FunctionMinute(AgentMessage):
    """One function's invocations on a node in one minute (replaced as the minute fills)."""

    site: Text = Field(min_length=1, max_length=63)  # the site (project) that served them
    function: str = Field(pattern=FUNCTION_KEY_PATTERN)  # "<project>/<name>"
    minute: datetime  # the minute's start, UTC
    invocations: Int = Field(ge=0)
    # the invocations that failed, by the runtime's outcome (none or "" logged: unavailable)
    errors: dict[FunctionOutcome, Int] = Field(default_factory=dict)
    statuses: dict[Text, Int] = Field(default_factory=dict)  # "2xx": n
    duration_ms: list[Int] = Field(default_factory=list)  # counts per UPSTREAM_MS_BUCKETS (+1)


class FunctionTrafficReport(AgentMessage):
    minutes: list[FunctionMinute] = Field(max_length=100_000)


class FunctionLogLine(AgentMessage):
    """One line a function wrote to its console (``console.log`` and the like), or the
    runtime wrote for it (an exception, a limit, lines dropped over its rate)."""

    function: str = Field(pattern=FUNCTION_KEY_PATTERN)  # "<project>/<name>"
    version: Int | None = Field(None, ge=1)
    at: datetime
    level: FunctionLogLevel = "log"
    message: MultilineText = Field("", max_length=FUNCTION_LOG_MESSAGE_MAX)
    request_id: Text | None = Field(None, max_length=64)


class FunctionLogReport(AgentMessage):
    lines: list[FunctionLogLine] = Field(max_length=FUNCTION_LOG_REPORT_MAX)
    dropped: Int = Field(0, ge=0)  # lines left out since the last report (over the bounds)
