"""Bot protection's pure parts: the rendering (nothing when unused, the CRS lists in one
alternation each, good bots and flags per site), the behaviour scorer and the agent's watch
(windows, flags, files, counts), and the challenge cookie's algorithm."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from edgeplane.model.bots import BotSettings
from edgeplane.node.agent.analytics import TrafficAggregator
from edgeplane.node.agent.bots import BotWatch, ClientWindow, score, verdict_of
from edgeplane.node.nginx import bot_cookie
from edgeplane.node.nginx.local import LocalHealth, NodeLocal
from edgeplane.node.nginx.render import render
from edgeplane.node.nginx.render_bots import phrases, regex_literal, render_bots
from edgeplane.protocol.bots import BehaviourSpec, BotSpec, GoodBotSpec
from edgeplane.protocol.config import EdgeConfig, NodeSpec, PoolSpec, SiteSpec
from edgeplane.snapshot.bots import bot_spec

LOCAL = NodeLocal(prefix=Path("/srv/edge/nginx"), node_name="edge-1", http_port=8080)
POOL = PoolSpec(id="origin.p", algorithm="round_robin", backends=())
KEY = "ab" * 32


def config(*sites: SiteSpec) -> EdgeConfig:
    return EdgeConfig(
        revision=1, node=NodeSpec(id="n", name="edge-1", region="r"), sites=sites, pools=(POOL,)
    )


def site(sid: str, bots: BotSpec | None = None) -> SiteSpec:
    return SiteSpec(id=sid, domains=(f"{sid}.test",), pool=POOL.id, bots=bots)


def test_nothing_is_rendered_for_sites_without_bot_protection() -> None:
    plain = render(config(site("a"), site("b")), LOCAL, LocalHealth())
    assert not any("bot" in text.decode() for text in plain.values())
    assert "bots.js" not in plain and b"load_module" not in plain["nginx.conf"]
    assert render_bots([site("a")], LOCAL.prefix) is None
    assert bot_spec(BotSettings(), KEY) is None  # all off: no spec
    assert bot_spec(BotSettings(mode="detect"), "") is None  # no key: none either


def test_a_site_with_bot_protection_renders_its_maps_and_the_script() -> None:
    good = GoodBotSpec(name="g", user_agent="Googlebot/2.1 (+x)", addresses=("10.0.0.0/8",))
    bots = BotSpec(key=KEY, mode="block", good_bots=(good,))
    files = render(config(site("a.b", bots), site("c")), LOCAL, LocalHealth())
    text = {name: content.decode() for name, content in files.items()}
    assert "load_module /usr/lib/nginx/modules/ngx_http_js_module.so;" in text["nginx.conf"]
    assert "js_import bots from bots.js;" in text["access.conf"]
    assert f'"a.b" "{KEY}";' in text["access.conf"]
    assert '"a.b" $bot_claim_0;' in text["access.conf"]
    assert '"~*Googlebot/2[.]1 [(][+]x[)]" "10.0.0.0/8";' in text["access.conf"]
    assert '"a.b" $bot_ua_any;' in text["access.conf"]  # mode block: the lists are searched
    assert '"1bad" bad;' not in text["access.conf"] and '"badg" claim;' in text["access.conf"]
    assert '"a.b" "block off off javascript 3600 12";' in text["access.conf"]
    assert "$bot_flag_path" not in text["access.conf"]  # no behaviour action: no flag check
    assert "if ($bot_stop)" in text["servers.conf"] and "-f" not in text["servers.conf"]
    assert "location @bot_stop" in text["locations.conf"]
    assert '"bot":"$bot_verdict"' in text["base.conf"]
    assert text["bots.js"].startswith("/*") and "export default {verdict, stop};" in text["bots.js"]
    with_flags = render_bots(
        [site("a", BotSpec(key=KEY, behaviour=BehaviourSpec(action="challenge")))], LOCAL.prefix
    )
    assert with_flags is not None
    assert 'set $bot_flagged "";' in with_flags.server
    assert '"a" "/srv/edge/nginx/bots/flagged/a/$remote_addr";' in with_flags.http
    assert '"1" behaviour;' in with_flags.http and '"1automated" behaviour;' in with_flags.http
    assert "$bot_ua_any" not in with_flags.http.split("map $http_user_agent")[0]  # no lists


def test_the_user_agent_lists_are_the_crs_phrases_matched_literally() -> None:
    files = render(config(site("a", BotSpec(key=KEY, mode="detect"))), LOCAL, LocalHealth())
    ua_map = re.search(
        r"map \$http_user_agent \$bot_ua_any \{.*?\n\}.*?\n\}", files["access.conf"].decode(), re.S
    )
    assert ua_map is not None
    either, bad = re.findall(r'"~\*(.*)" (?:\$bot_ua_which|bad);', ua_map.group(0))
    bad_re, either_re = re.compile(bad, re.I), re.compile(either, re.I)
    for ua in (
        "sqlmap/1.7",
        "Mozilla/5.00 (Nikto/2.1.6)",
        "Nuclei - Open-source project",
        "WPScan v3",
    ):
        assert bad_re.search(ua), ua
    for ua in ("python-requests/2.31", "libwww-perl/6.0", "Python-urllib/3.11"):
        assert either_re.search(ua) and not bad_re.search(ua), ua
    browser = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/124.0 Safari/537.36"
    assert not either_re.search(browser)
    assert bad_re.search("(hydra)") and not bad_re.search("hydra")  # phrases, not regexes
    assert "\\" not in ua_map.group(0) and len(phrases('# c\n\nsqlmap\nbad"one\n')) == 1
    assert regex_literal("a.b (c)+") == "a[.]b [(]c[)][+]"
    data = Path(bot_cookie.__file__).parent / "bot_data"
    for name in ("scanners", "scripting"):
        for phrase in phrases((data / f"{name}-user-agents.data").read_text()):
            assert either_re.search(f"x {phrase.upper()} y"), phrase  # none skipped
            assert (name == "scanners") == bool(bad_re.search(f"x {phrase} y")), phrase


def limits(**kw: int | float) -> BehaviourSpec:
    return BehaviourSpec(action="challenge", **kw)  # type: ignore[arg-type]


def test_the_scorer_names_the_threshold_passed() -> None:
    lim = limits(max_requests=100, max_paths=10, max_error_ratio=0.5, min_requests=20)
    assert score(ClientWindow(0, requests=100, paths=set(map(str, range(10)))), lim) is None
    assert score(ClientWindow(0, requests=101), lim) == "101 requests in 60 s"
    assert "distinct paths" in (
        score(ClientWindow(0, 5, paths=set(map(str, range(11)))), lim) or ""
    )
    assert score(ClientWindow(0, requests=19, errors=19), lim) is None  # too few to judge
    assert score(ClientWindow(0, requests=20, errors=11), lim) == "55% errors over 20 requests"


def line(addr: str, uri: str, status: int = 200, **kw: object) -> dict[str, object]:
    return {"remote_addr": addr, "uri": uri, "status": status, "bot": "", "source": "", **kw}


def test_the_watch_flags_fast_crawlers_per_site_and_keeps_the_files(tmp_path: Path) -> None:
    watch = BotWatch(tmp_path / "flagged")
    spec = BotSpec(key=KEY, behaviour=limits(max_paths=5, window_s=10, flag_s=30))
    watch.set_sites([site("s", spec), site("other")])
    for n in range(5):
        watch.add("s", line("192.0.2.1", f"/p{n}?q={n}"), 100.0, 200, 1)
        watch.add("s", line("192.0.2.2", "/same?q=1"), 100.0, 200, 50)  # many, one path
        watch.add("other", line("192.0.2.1", f"/o{n}"), 100.0, 404, 1)  # no behaviour there
    assert not watch.flagged
    watch.add("s", line("192.0.2.1", "/p0?other"), 101.0, 200, 1)  # the same path again
    watch.add("s", line("not-an-address", "/x"), 101.0, 200, 1)
    watch.add("s", line("192.0.2.3", "/p0", source="bot"), 101.0, 403, 99)  # the edge's answers
    assert not watch.flagged
    watch.add("s", line("192.0.2.1", "/p5"), 102.0, 200, 1)
    assert watch.flagged == {("s", "192.0.2.1"): 132.0} and watch.flags_total == 1
    watch.add("s", line("2001:DB8::1", "/a"), 102.0, 200, 1)  # addresses normalised
    assert ("s", "2001:db8::1") in watch._windows
    assert watch.pending()
    watch.sync_files()
    flag = tmp_path / "flagged" / "s" / "192.0.2.1"
    assert flag.exists() and (flag.parent.stat().st_mode & 0o777) == 0o755
    assert not watch.pending()
    watch.expire(131.0)
    assert flag.exists()
    watch.expire(132.0)
    watch.sync_files()
    assert not flag.exists() and not watch.flagged
    # a new window starts when the old one ends: the paths of before do not count
    for n in range(5):
        watch.add("s", line("192.0.2.9", f"/w{n}"), 200.0, 200, 1)
    watch.add("s", line("192.0.2.9", "/w5"), 211.0, 200, 1)
    assert not watch.flagged
    # a site that drops its behaviour action drops its windows and flags
    watch.add("s", line("192.0.2.1", "/", 404), 300.0, 404, 1000)
    assert watch.flagged
    watch.set_sites([site("s")])
    assert not watch.flagged and not watch._windows
    watch.sync_files()
    assert not any((tmp_path / "flagged").rglob("192.*"))


def test_verdicts_are_counted_per_site_and_minute() -> None:
    assert verdict_of({"bot": "bad:block"}) == ("bad", "block")
    for odd in ("", "bad", "bad:blocked", "x:block", 3, None):
        assert verdict_of({"bot": odd}) is None
    watch = BotWatch(None)
    aggregator = TrafficAggregator(bots=watch)
    base = '{"time":"2026-01-01T00:00:10+00:00","host":"a.test","site":"s","status":%d,'
    lines = [
        (base % 403 + '"remote_addr":"192.0.2.1","uri":"/","bot":"bad:block"}').encode(),
        (base % 307 + '"remote_addr":"192.0.2.1","uri":"/","bot":"bad:challenge"}').encode(),
        (base % 200 + '"remote_addr":"192.0.2.1","uri":"/","bot":""}').encode(),
    ]
    aggregator.add_lines([lines[0], lines[0], lines[1], lines[2]])
    (minute,) = aggregator.changed()
    assert minute.bots == {"bad:block": 2, "bad:challenge": 1} and minute.requests == 4
    assert watch.counts == {("s", "bad", "block"): 2, ("s", "bad", "challenge"): 1}
    assert "bots" in minute.model_dump()
    empty = minute.model_copy(update={"bots": {}})
    assert "bots" not in empty.model_dump()  # what control planes before bots take


@pytest.mark.parametrize("kind", ["c", "j"])
def test_the_cookie_algorithm(kind: str) -> None:
    args = {"address": "192.0.2.1", "user_agent": "ua"}
    if kind == "c":
        value = bot_cookie.cookie_value(KEY, 1600, **args)
    else:
        sig = bot_cookie.signature(KEY, "j", 1600, **args)
        value = bot_cookie.solve(f"j.1600.{sig}", 10)
        assert bot_cookie.zero_bits(hashlib.sha256(value.encode()).hexdigest(), 10)
    check = {"kind": kind, "now": 1000, "ttl_s": 600, "difficulty": 10, **args}
    assert bot_cookie.check(KEY, value, **check)  # type: ignore[arg-type]
    assert not bot_cookie.check(KEY, value, **{**check, "now": 1600})  # type: ignore[arg-type]
    assert not bot_cookie.check(KEY, value, **{**check, "now": 900})  # type: ignore[arg-type]
    assert not bot_cookie.check(KEY, value, **{**check, "address": "192.0.2.2"})  # type: ignore[arg-type]
    assert not bot_cookie.check("cd" * 32, value, **check)  # type: ignore[arg-type]
    other = "j" if kind == "c" else "c"
    assert not bot_cookie.check(KEY, value, **{**check, "kind": other})  # type: ignore[arg-type]
