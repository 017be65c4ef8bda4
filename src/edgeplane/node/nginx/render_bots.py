"""Bot protection in nginx: client classes by native maps, challenges by njs (``bot_data/bots.js``).

Rendered only when some site has bot protection (``SiteSpec.bots``). Other sites then pay a few
map lookups per request (the route's check and the log's verdict stop at ``$bot_site``) and,
when some site has a behaviour action, a ``set`` and a failed ``stat("")``: about 3.6k of a
cached hit's 33k instructions (``bench/bots.py``), and no JavaScript. For a site with it, per
request:

- ``$bot_class`` (maps, evaluated lazily): ``claim`` (the user agent names one of the site's
  good bots: ``$bot_claim`` holds that bot's ranges), ``bad`` (a scanner of the CRS's list, for
  sites whose ``mode`` is not off), ``behaviour`` (the client's address is flagged: a file
  ``<prefix>/bots/flagged/<site>/<addr>`` that the agent writes, seen through a ``stat`` at the
  server level: no reload), ``automated`` (an HTTP library of the CRS's list, or no user
  agent), else "";
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
from typing import Any

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


def trie_regex(items: list[str]) -> str:
    """One PCRE (without flags) matching any of ``items`` lower-cased, factored as a trie: an
    unanchored search tries one branch per first character at each position of the subject,
    not every phrase (a phrase that another one starts with makes the longer one needless)."""
    root: dict[str, Any] = {}
    for item in sorted({i.lower() for i in items}, key=len):
        node = root
        for ch in item:
            if node.get("") is True:
                break  # a shorter phrase already matches
            node = node.setdefault(ch, {})
        else:
            node.clear()
            node[""] = True

    def emit(node: dict[str, Any]) -> str:
        branches = [regex_literal(ch) + emit(child) for ch, child in sorted(node.items()) if ch]
        if not branches:
            return ""
        return branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"

    return emit(root)


def _alternation(items: list[str]) -> str:
    """A caseless PCRE for a map key matching any of ``items``: those that start with a letter
    or a digit only where a word starts (a client's user agent names its tool as a word), so
    that an unanchored search rejects most positions of a browser's user agent at once (inside
    a word) instead of trying a branch per first character at every one (about a third of the
    instructions of a cached hit, measured by bench/bots.py)."""
    words = [i for i in items if i[:1].isalnum()]
    others = [i for i in items if not i[:1].isalnum()]
    branches = [f"(?<![a-z0-9]){trie_regex(words)}"] if words else []
    branches += [trie_regex(others)] if others else []
    return lit("~*" + (branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"))


@functools.lru_cache(maxsize=1)
def user_agent_map() -> str:
    """``$bot_ua_any``: ``bad`` for the CRS's scanners, ``automated`` for its scripting clients and
    for requests with no user agent. A browser's user agent is searched once (both lists in
    one trie); only one that matches is searched again for which list it is in."""
    bad = phrases(_data("scanners-user-agents.data"))
    automated = phrases(_data("scripting-user-agents.data"))
    either = ['default "";', '"" automated;', f"{_alternation(bad + automated)} $bot_ua_which;"]
    which = ["default automated;", f"{_alternation(bad)} bad;"]
    return block("map $http_user_agent $bot_ua_any", either) + block(
        "map $http_user_agent $bot_ua_which", which
    )


def _class(flagged: str, ua: str, claimed: str) -> str:
    """The first that applies: a claim (njs checks its address), a scanner, a flagged
    address, an HTTP library."""
    if claimed:
        return "claim"
    if ua == "bad":
        return "bad"
    return "behaviour" if flagged else ua


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
    claimed = [(i, b) for i, b in used if b.good_bots]
    # the user agent lists are searched only for the sites that act on them
    listed = [(i, "$bot_ua_any") for i, b in used if b.mode != "off" or b.automated != "off"]
    http += map_block("$site_id", "$bot_ua", listed)
    http += map_block(
        "$site_id", "$bot_claim", [(i, f"$bot_claim_{n}") for n, (i, _) in enumerate(claimed)]
    )
    for n, (_, bots) in enumerate(claimed):
        claims = [
            (lit(f"~*{regex_literal(g.user_agent)}"), lit(" ".join(g.addresses)))
            for g in bots.good_bots
        ]
        http += block(
            f"map $http_user_agent $bot_claim_{n}",
            ['default "";', *(f"{k} {v};" for k, v in claims)],
        )
    http += block("map $bot_claim $bot_claimed", ['"" "";', "default g;"])
    http += user_agent_map()
    server: list[str] = []
    flags_seen = ("", "1") if behaviour else ("",)
    if behaviour:
        paths = [(i, f'"{flags}/{i}/$remote_addr"') for i, b in used if b.behaviour.action != "off"]
        http += map_block("$site_id", "$bot_flag_path", paths)
        server = ['set $bot_flagged "";', "if (-f $bot_flag_path) { set $bot_flagged 1; }"]
    # every combination spelled out: a hash lookup, no regex
    classes = [
        (f + ua + c, _class(f, ua, c))
        for f in flags_seen
        for ua in ("", "bad", "automated")
        for c in ("", "g")
    ]
    key = '"$bot_flagged$bot_ua$bot_claimed"' if behaviour else '"$bot_ua$bot_claimed"'
    http += map_block(key, "$bot_class_any", [(k, v) for k, v in classes if v])
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
