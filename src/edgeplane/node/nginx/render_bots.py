"""Bot protection in nginx: client classes by native maps, challenges by njs (``bot_data/bots.js``).

Rendered only when some site has bot protection (``SiteSpec.bots``); other sites pay one map
lookup (``$bot_site``), one ``set`` and one failed ``stat("")`` per request, and no JavaScript.
For a site with it, per request:

- ``$bot_class`` (maps, evaluated lazily): ``claim`` (the user agent names one of the site's
  good bots: ``$bot_claim`` holds that bot's ranges), ``bad`` (a scanner of the CRS's list),
  ``behaviour`` (the client's address is flagged: a file ``<prefix>/bots/flagged/<site>/<addr>``
  that the agent writes, seen through a ``stat`` at the server level: no reload), ``automated``
  (an HTTP library of the CRS's list, or no user agent), else "";
- only when there is a class, njs's ``verdict`` (``$bot_verdict``, computed once per request)
  checks a claim's address against its ranges, picks the class's action and, for a challenge,
  verifies the challenge cookie (HMAC-SHA256 with the site's key, ``$bot_key``);
- ``location /`` sends a challenge or a block to ``@bot_stop`` (njs's ``stop``); the access log
  gets the verdict (``"bot"``), which the agent counts.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from edgeplane.node.nginx.syntax import block, lit, map_block
from edgeplane.protocol.bots import BotSpec
from edgeplane.protocol.config import SiteSpec

NJS_MODULE = "/usr/lib/nginx/modules/ngx_http_js_module.so"  # Debian's libnginx-mod-http-js
SCRIPT = "bots.js"  # in the release directory (nginx's conf prefix)
STOP_LOCATION = "@bot_stop"
ROUTE_LINE = f"if ($bot_stop) {{ error_page 418 = {STOP_LOCATION}; return 418; }}"
LOG_FIELD = '"bot":"$bot_verdict",'
_UNSAFE = frozenset('"\\$^]{}')
_KEEP = frozenset(" -_/:;,=@%&'!<>~`#")


def flag_dir(prefix: Path) -> Path:
    """Where the agent flags client addresses: ``<dir>/<site>/<address>`` (empty files)."""
    return prefix / "bots" / "flagged"


def _data(name: str) -> str:
    return resources.files("edgeplane.node.nginx").joinpath("bot_data", name).read_text()


def phrases(text: str) -> list[str]:
    """The phrases of a CRS ``.data`` list (one a line, ``#`` comments), without those nginx
    cannot carry literally in a map key."""
    out: list[str] = []
    for line in text.splitlines():
        phrase = line.strip()
        if not phrase or phrase.startswith("#"):
            continue
        if any(c in _UNSAFE or ord(c) < 32 or ord(c) == 127 for c in phrase):
            continue
        out.append(phrase)
    return out


def regex_literal(text: str) -> str:
    """``text`` as a PCRE matching it literally, with no backslash (metacharacters in a
    character class of their own), for a quoted nginx map key."""
    return "".join(c if c.isalnum() or c in _KEEP else f"[{c}]" for c in text)


def _alternation(items: list[str]) -> str:
    return lit("~*(?:" + "|".join(regex_literal(p) for p in items) + ")")


@functools.lru_cache(maxsize=1)
def user_agent_map() -> str:
    """``$bot_ua``: ``bad`` for the CRS's scanners, ``automated`` for its scripting clients and
    for requests with no user agent (one alternation each: PCRE compiles it once, JIT)."""
    bad = phrases(_data("scanners-user-agents.data"))
    automated = phrases(_data("scripting-user-agents.data"))
    lines = [
        'default "";',
        '"" automated;',
        f"{_alternation(bad)} bad;",
        f"{_alternation(automated)} automated;",
    ]
    return block("map $http_user_agent $bot_ua", lines)


def script() -> str:
    return _data(SCRIPT)


def _conf(bots: BotSpec) -> str:
    return lit(
        f"{bots.mode} {bots.automated} {bots.behaviour.action} {bots.challenge} "
        f"{bots.cookie_ttl_s} {bots.difficulty}"
    )


@dataclass(frozen=True)
class BotRender:
    http: str  # maps and njs directives (http level)
    server: list[str] = field(default_factory=list)  # server-level lines (the flag check)
    location: str = ""  # the named location of challenges and blocks
    files: dict[str, str] = field(default_factory=dict)  # release files (the script)
    module: str = NJS_MODULE  # the module to load


def render_bots(sites: list[SiteSpec], prefix: Path) -> BotRender | None:
    """What the sites' bot protection adds to the release; None when no site has any."""
    used = [(s.id, s.bots) for s in sites if s.bots is not None]
    if not used:
        return None
    behaviour = any(b.behaviour.action != "off" for _, b in used)
    flags = flag_dir(prefix)
    lit(str(flags))  # a prefix nginx can hold in a quoted string
    http = f"js_import bots from {SCRIPT};\n"
    http += map_block("$site_id", "$bot_site", [(i, "1") for i, _ in used])
    http += map_block("$site_id", "$bot_conf", [(i, _conf(b)) for i, b in used])
    http += map_block("$site_id", "$bot_key", [(i, lit(b.key)) for i, b in used])
    claims: list[tuple[str, str]] = []
    for site, bots in used:
        for bot in bots.good_bots:
            key = f"~*^{regex_literal(site)}#.*{regex_literal(bot.user_agent)}"
            claims.append((key, lit(" ".join(bot.addresses))))
    http += block(
        'map "$site_id#$http_user_agent" $bot_claim',
        ['default "";', *(f"{lit(k)} {v};" for k, v in claims)],
    )
    http += user_agent_map()
    server: list[str] = []
    if behaviour:
        paths = [(i, f'"{flags}/{i}/$remote_addr"') for i, b in used if b.behaviour.action != "off"]
        http += map_block("$site_id", "$bot_flag_path", paths)
        server = ['set $bot_flagged "";', "if (-f $bot_flag_path) { set $bot_flagged 1; }"]
        key = '"$bot_flagged$bot_ua#$bot_claim"'
    else:
        key = '"$bot_ua#$bot_claim"'
    # the first match wins: a claim (njs checks its address), a scanner, a flagged address,
    # an HTTP library
    classes = ['default "";', '"~#." claim;', '"~^1?bad#" bad;']
    if behaviour:
        classes.append('"~^1" behaviour;')
    classes.append('"~^automated#" automated;')
    http += block(f"map {key} $bot_class_any", classes)
    # lazily: a site without bot protection never evaluates the maps above, nor njs
    http += block("map $bot_site $bot_class", ['"" "";', "default $bot_class_any;"])
    http += "js_set $bot_js bots.verdict;\n"
    http += block("map $bot_class $bot_verdict", ['"" "";', "default $bot_js;"])
    http += block(
        "map $bot_verdict $bot_stop", ['default "";', '"~:challenge$" 1;', '"~:block$" 1;']
    )
    location = block(
        f"location {STOP_LOCATION}",
        [
            "include headers.conf;",
            'set $edge_source "bot";',
            "absolute_redirect off;",
            "js_content bots.stop;",
        ],
    )
    return BotRender(http=http, server=server, location=location, files={SCRIPT: script()})


__all__ = [
    "LOG_FIELD",
    "NJS_MODULE",
    "ROUTE_LINE",
    "BotRender",
    "flag_dir",
    "phrases",
    "regex_literal",
    "render_bots",
    "user_agent_map",
]
