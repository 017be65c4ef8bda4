"""The web application firewall in nginx (pure): ModSecurity v3 with the OWASP Core Rule Set.

Only a snapshot with a site whose WAF is on (``SiteSpec.waf``) loads the module and the CRS;
one without renders exactly as if the WAF did not exist.

Where inspection happens: the shared ``server`` sends each request to a named location per
(cache profile, proxy profile); a site with the WAF on gets named locations of its own, one
per distinct WAF profile (mode, paranoia level, threshold, exclusions: ``WafProxy``). Sites
without the WAF never reach one of them, so they create no ModSecurity transaction at all;
and a WAF site is never served in place by ``location /`` (``render_jump``), whose requests
of every site would pay otherwise. On a node with the origin hop (``render_hop``, njs), a
caching location's misses go to the hop of its proxy profile, and a ``WafProxy``'s hop is
where its requests are inspected (``HopInspection``): between the cache and the origin, so
cached hits pay nothing for the WAF; the caching location sends the hop its request id
(``toward_hop``). Locations that do not go through a hop (bypass rules, a node without njs)
inspect in place, with ``modsecurity on`` and the profile's few rules (``WafProxy.lines``).

The CRS is parsed once, at ``http`` level (``modsecurity off`` there); each WAF location's
own rules are merged in front of it (ModSecurity-nginx merges a location's rules before its
parent's), so they run before the CRS's initialization: ``tx.paranoia_level`` and
``tx.inbound_anomaly_score_threshold`` set there are the ones the CRS uses, and the
exclusions' ``ctl:ruleRemoveById`` (conditioned on ``REQUEST_FILENAME`` for a path) apply
before the rules they remove.

``location /`` jumps with ``error_page 418``: ModSecurity-nginx never blocks a request that is
on an error page (``r->error_page``), so with a WAF site ``location /`` sets
``recursive_error_pages on`` (which leaves that flag unset). A refused request (403, or 400
for a body ModSecurity cannot parse) gets ``@waf_blocked``: a short text naming its request
id, which is ModSecurity's transaction id (``modsecurity_transaction_id $request_id``) and
the ``X-Request-Id`` header of every response of a WAF site.

Every request that matched a rule is written to the audit log (JSON, one line per request,
``logs/waf-audit.json`` under the prefix): the agent reads it (``node.agent.waf_log``).
Responses are not inspected (``SecResponseBodyAccess Off`` and no RESPONSE-9xx rules): the
edge serves the origin's responses, mostly from cache, and inspecting them would cost every
hit; requests are inspected in full, bodies included.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from edgeplane.node.nginx.local import NodeLocal, WafEngine
from edgeplane.node.nginx.render_upstreams import ProxyProfile
from edgeplane.node.nginx.syntax import block
from edgeplane.protocol.config import PoolSpec, SiteSpec, WafSpec

BLOCKED_LOC = "@waf_blocked"
BLOCKED_PATH = "/waf-blocked"  # on the internal status listener
REQUEST_ID_HEADER = "X-Edge-Request-Id"
REFUSED_HEADER = "X-Edge-Waf"  # the hop's refusal (never stored by the caching location)
AUDIT_LOG = "logs/waf-audit.json"  # relative to the node's prefix
PROFILE_RULE_ID = 10_000  # the profile's settings; its exclusions follow (10001...)
SCORE_RULE_ID = 10_900  # logs the request's inbound anomaly score (phase 5)
SCORE_TAG = "edgeplane/anomaly-score"
BLOCKED_TEXT = (
    "Request blocked by the web application firewall.\\n"
    "If you think this is a mistake, report this request id: $request_id\\n"
)


def waf_on(site: SiteSpec) -> bool:
    return site.waf is not None


def nginx_string(text: str) -> str:
    """``text`` as a single-quoted nginx string (nginx unescapes ``\\\\`` and ``\\'``)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def profile_name(spec: WafSpec) -> str:
    """``w<b|d><paranoia>t<threshold>``, and ``x<hash>`` of the exclusions when there are."""
    name = f"w{spec.mode[0]}{spec.paranoia_level}t{spec.anomaly_threshold}"
    if spec.exclusions:
        body = repr([(e.rules, e.path) for e in spec.exclusions]).encode()
        name += "x" + hashlib.sha256(body).hexdigest()[:8]
    return name


def profile_rules(spec: WafSpec) -> str:
    """A profile's own ModSecurity rules (merged before the CRS by ModSecurity-nginx)."""
    engine = "On" if spec.mode == "block" else "DetectionOnly"
    lines = [
        f"SecRuleEngine {engine}",
        f'SecAction "id:{PROFILE_RULE_ID},phase:1,pass,nolog,t:none,'
        f"setvar:tx.paranoia_level={spec.paranoia_level},"
        f'setvar:tx.inbound_anomaly_score_threshold={spec.anomaly_threshold}"',
    ]
    for n, exclusion in enumerate(spec.exclusions, start=1):
        ctl = ",".join(f"ctl:ruleRemoveById={rule}" for rule in exclusion.rules)
        actions = f"id:{PROFILE_RULE_ID + n},phase:1,pass,nolog,t:none,{ctl}"
        if exclusion.path is None:
            lines.append(f'SecAction "{actions}"')
        else:
            # the path is validated (model.waf.PATH_PATTERN): no quote, backslash or space
            lines.append(f'SecRule REQUEST_FILENAME "@beginsWith {exclusion.path}" "{actions}"')
    return "\n".join(lines) + "\n"


@dataclass(frozen=True, order=True)
class WafProxy(ProxyProfile):
    """A proxy profile whose locations inspect requests with a WAF profile."""

    profile: str = ""
    rules: str = ""

    @property
    def name(self) -> str:
        return f"{super().name}__{self.profile}"

    def lines(self) -> list[str]:
        return [
            *super().lines(),
            "modsecurity on;",
            f"modsecurity_rules {nginx_string(self.rules)};",
            f"error_page 400 403 {BLOCKED_LOC}_{self.profile};",
            "add_header X-Request-Id $request_id always;",
        ]


def site_proxy(site: SiteSpec, pool: PoolSpec, local: NodeLocal) -> ProxyProfile:
    """The proxy profile of ``site``'s locations: the pool's, with its WAF profile when on."""
    proxy = ProxyProfile.of(pool)
    if site.waf is None:
        return proxy
    if local.waf is None:
        raise ValueError(
            f"site {site.id}: the WAF is on but this node's nginx has no ModSecurity module "
            "or Core Rule Set (Debian: libnginx-mod-http-modsecurity, modsecurity-crs)"
        )
    return WafProxy(
        proxy.connect_ms,
        proxy.read_ms,
        proxy.tries,
        profile=profile_name(site.waf),
        rules=profile_rules(site.waf),
    )


def load_modules(local: NodeLocal, sites: list[SiteSpec]) -> tuple[str, ...]:
    """The modules ``nginx.conf`` loads for the WAF (none when no site has the WAF on)."""
    if local.waf is None or not any(waf_on(s) for s in sites):
        return ()
    return tuple(local.waf.modules)


def base_rules(prefix: Path, engine: WafEngine) -> str:
    """The ``http``-level rules: ModSecurity's settings, the CRS's setup, the CRS's request
    rules and the anomaly score's log line."""
    p = str(prefix)
    return "\n".join(
        [
            "SecRuleEngine DetectionOnly",
            "SecRequestBodyAccess On",
            'SecRule REQUEST_HEADERS:Content-Type "@rx ^(?:application(?:/soap\\+|/)|text/)xml" '
            '"id:200000,phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=XML"',
            'SecRule REQUEST_HEADERS:Content-Type "@rx ^application/json" '
            '"id:200001,phase:1,t:none,t:lowercase,pass,nolog,ctl:requestBodyProcessor=JSON"',
            # bodies past the limits are inspected up to them (never refused for their size:
            # client_max_body_size says how large a body may be)
            "SecRequestBodyLimit 13107200",
            "SecRequestBodyNoFilesLimit 131072",
            "SecRequestBodyLimitAction ProcessPartial",
            "SecRequestBodyJsonDepthLimit 512",
            "SecArgumentsLimit 1000",
            'SecRule &ARGS "@ge 1000" "id:200007,phase:2,t:none,log,deny,status:400,'
            "msg:'Failed to fully parse request body due to large argument count',severity:2\"",
            'SecRule REQBODY_ERROR "!@eq 0" "id:200002,phase:2,t:none,log,deny,status:400,'
            "msg:'Failed to parse request body',logdata:'%{reqbody_error_msg}',severity:2\"",
            'SecRule MULTIPART_STRICT_ERROR "!@eq 0" "id:200003,phase:2,t:none,log,deny,'
            "status:400,msg:'Multipart request body failed strict validation',severity:2\"",
            'SecRule MULTIPART_UNMATCHED_BOUNDARY "@eq 1" "id:200004,phase:2,t:none,log,deny,'
            "msg:'Multipart parser detected a possible unmatched boundary',severity:2\"",
            "SecPcreMatchLimit 1000",
            "SecPcreMatchLimitRecursion 1000",
            'SecRule TX:/^MSC_/ "!@streq 0" "id:200005,phase:2,t:none,log,deny,'
            "msg:'ModSecurity internal error flagged: %{MATCHED_VAR_NAME}'\"",
            "SecResponseBodyAccess Off",
            f"SecTmpDir {p}/tmp",
            f"SecDataDir {p}/tmp",
            # a request is logged when a rule matched it (no status is relevant of itself)
            "SecAuditEngine RelevantOnly",
            "SecAuditLogParts ABHZ",
            "SecAuditLogFormat JSON",
            "SecAuditLogType Serial",
            f"SecAuditLog {p}/{AUDIT_LOG}",
            "SecArgumentSeparator &",
            "SecCookieFormat 0",
            "SecStatusEngine Off",
            # the CRS's setup (crs-setup.conf's defaults, REST methods allowed)
            'SecDefaultAction "phase:1,log,auditlog,pass"',
            'SecDefaultAction "phase:2,log,auditlog,pass"',
            'SecAction "id:900990,phase:1,nolog,pass,t:none,setvar:tx.crs_setup_version=334"',
            'SecAction "id:900200,phase:1,nolog,pass,t:none,'
            "setvar:'tx.allowed_methods=GET HEAD POST OPTIONS PUT PATCH DELETE'\"",
            f"Include {engine.crs_rules}/REQUEST-*.conf",
            f'SecRule TX:ANOMALY_SCORE "@gt 0" "id:{SCORE_RULE_ID},phase:5,pass,t:none,log,'
            f"msg:'Inbound anomaly score',logdata:'%{{tx.anomaly_score}}',tag:'{SCORE_TAG}'\"",
        ]
    )


def http_lines(local: NodeLocal, sites: list[SiteSpec]) -> str:
    """``base.conf``'s ModSecurity lines (none when no site has the WAF on)."""
    if local.waf is None or not any(waf_on(s) for s in sites):
        return ""
    return (
        "modsecurity off;\n"  # on only in the WAF sites' locations
        "modsecurity_transaction_id $request_id;\n"
        f"modsecurity_rules {nginx_string(base_rules(local.prefix, local.waf))};\n"
        + (HOP_REQUEST_ID_MAP if local.js_module else "")
    )


def _blocked(
    name: str,
    profile: WafProxy,
    status_socket: str,
    request_id: str,
    head: list[str],
    indent: str = "",
) -> str:
    return block(
        f"location {name}",
        [
            *head,
            "modsecurity on;",
            f"modsecurity_rules {nginx_string(profile.rules)};",
            f"rewrite ^ {BLOCKED_PATH} break;",  # what ModSecurity reads is the request's own
            f"proxy_pass http://unix:{status_socket};",
            "proxy_pass_request_body off;",
            'proxy_set_header Content-Length "";',
            f"proxy_set_header {REQUEST_ID_HEADER} {request_id};",
        ],
        indent,
    )


def blocked_locations(proxies: Iterable[ProxyProfile], status_socket: str) -> str:
    """``@waf_blocked_<profile>``: the answer to a request a profile refused (403, or 400 for
    a body it cannot parse), naming its request id.

    ModSecurity-nginx (1.0.3) writes a request's audit log line in the log phase of the
    location that ends it, with the transaction it keeps in the request's context, which the
    jump to this location clears: so this location inspects the request again with the same
    profile (the same matches: the rules are deterministic; nothing is refused twice, since
    the connector never refuses an error page) and that transaction is the one logged, under
    the same request id. Only refused requests pay the second inspection. Its answer comes
    from the internal status listener (``status_location``): a ``return`` here would answer
    in the rewrite phase, before ModSecurity inspects the body and the arguments.

    ``proxies``: those of the locations that inspect in place (on a node with the origin
    hop, only the ones that do not go through it: ``hop_inspection`` has the hop's own)."""
    profiles = {p.profile: p for p in proxies if isinstance(p, WafProxy)}
    head = [
        "include headers.conf;",
        "add_header X-Request-Id $request_id always;",
        "add_header Cache-Control no-store always;",
        'set $edge_source "";',
    ]
    return "".join(
        _blocked(f"{BLOCKED_LOC}_{name}", profiles[name], status_socket, "$request_id", head)
        for name in sorted(profiles)
    )


# A WAF site's X-Request-Id on a node with the hop: none on a response from the cache, which
# nothing inspected (``$request_id`` draws 16 random bytes: about 7 us of a 28 us cached hit
# with OpenSSL 3, measured with bench/security.py).
HOP_REQUEST_ID = "$edge_request_id"
HOP_REQUEST_ID_MAP = f"""map $upstream_cache_status {HOP_REQUEST_ID} {{
    HIT "";
    UPDATING "";
    default $request_id;
}}
"""


def toward_hop(proxy: ProxyProfile) -> list[str]:
    """A WAF site's caching location's lines toward its hop: the client's request id (this
    nginx's ``$request_id``) goes to the hop in ``X-Edge-Request-Id`` and names the response
    (not a cached hit's: ``HOP_REQUEST_ID_MAP``); the hop's refusal (``X-Edge-Waf``) is never
    stored, whatever the rule's TTL says."""
    if not isinstance(proxy, WafProxy):
        return []
    return [
        f"add_header X-Request-Id {HOP_REQUEST_ID} always;",
        f"proxy_set_header {REQUEST_ID_HEADER} $request_id;",
        f"proxy_hide_header {REFUSED_HEADER};",
        f"proxy_no_cache $upstream_http_{_var(REFUSED_HEADER)};",
    ]


HOP_INSPECT = "@waf"  # a WAF hop's named locations (each hop is a server of its own)
HOP_REFUSAL = "$hop_refusal"
HOP_REFUSAL_MAP = f"""# a WAF hop's refusal, or an origin's own 400 / 403 that @expired intercepted
map $upstream_status {HOP_REFUSAL} {{
    "" {BLOCKED_LOC};
    default {HOP_INSPECT};
}}
"""


@dataclass(frozen=True)
class HopInspection:
    """The WAF in the origin hop of a ``WafProxy`` (``render_hop``): the hop inspects every
    request that reaches it, with the client's address (the hop's ``real_ip_header``) and
    request id (``X-Edge-Request-Id`` from the caching location, not passed on to the
    origin). A refusal (``@waf_blocked``, as ``blocked_locations``) answers with
    ``X-Edge-Waf`` (the caching location does not store it: ``toward_hop``) and
    ``X-Edge-CC: no-store`` (the ``Cache-Control`` the client sees).

    ModSecurity-nginx refuses nothing on an error page (``r->error_page``), which nginx sets
    on a jump made where ``recursive_error_pages`` is off. The hop's ``location /`` jumps
    (with it on) to ``@waf`` or, for an expired stored response, ``@expired``; both inspect,
    with it off, so that their refusal's jump to ``@waf_blocked`` is refused nothing again.
    ``@expired`` intercepts the origin's errors (``render_hop``), its own 400 and 403
    included: those (an ``$upstream_status``) go to ``@waf``, which asks the origin again
    without interception (the request passed the inspection: it passes it again)."""

    proxy: WafProxy
    status_socket: str

    @property
    def head(self) -> list[str]:
        """The hop ``server``'s lines."""
        return [f"modsecurity_transaction_id $http_{_var(REQUEST_ID_HEADER)};"]

    @property
    def route(self) -> list[str]:
        """``location /``'s lines after the jump of an expired response's request."""
        return [f"error_page 418 = {HOP_INSPECT};", "return 418;"]

    def lines(self) -> list[str]:
        """The inspecting locations' profile lines (in place of ``proxy.lines()``)."""
        return [
            *ProxyProfile.lines(self.proxy),
            "modsecurity on;",
            f"modsecurity_rules {nginx_string(self.proxy.rules)};",
            "recursive_error_pages off;",
            f'proxy_set_header {REQUEST_ID_HEADER} "";',
        ]

    @property
    def refusal(self) -> list[str]:
        """``@waf``'s ``error_page`` (``expired``: ``@expired``'s)."""
        return [f"error_page 400 403 {BLOCKED_LOC};"]

    @property
    def expired_refusal(self) -> list[str]:
        return [f"error_page 400 403 {HOP_REFUSAL};"]

    def locations(self, indent: str) -> str:
        """The hop's ``@waf_blocked``."""
        head = [
            f"add_header {REFUSED_HEADER} refused always;",
            "add_header X-Edge-CC no-store always;",
        ]
        request_id = f"$http_{_var(REQUEST_ID_HEADER)}"
        return _blocked(BLOCKED_LOC, self.proxy, self.status_socket, request_id, head, indent)


def hop_inspection(proxy: ProxyProfile, status_socket: str) -> HopInspection | None:
    """The WAF of ``proxy``'s origin hop (None for a profile without it)."""
    return HopInspection(proxy, status_socket) if isinstance(proxy, WafProxy) else None


def _var(header: str) -> str:
    return header.lower().replace("-", "_")


def status_location(proxies: Iterable[ProxyProfile]) -> list[str]:
    """The internal status listener's location that answers a refused request (with a WAF
    profile in use)."""
    if not any(isinstance(p, WafProxy) for p in proxies):
        return []
    text = BLOCKED_TEXT.replace(
        "$request_id", "$http_" + REQUEST_ID_HEADER.lower().replace("-", "_")
    )
    return [f'location = {BLOCKED_PATH} {{ default_type text/plain; return 403 "{text}"; }}']
