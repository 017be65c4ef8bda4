"""Bot protection in the rendered nginx (real nginx with njs, a real origin): scanners per mode,
browsers untouched, the cookie challenge followed by a client with cookies, forged and foreign
cookies refused, the JavaScript challenge solved (by the algorithm in Python and by a real
Chromium), good bots by their ranges, and addresses flagged through a file without a reload."""

from __future__ import annotations

import hashlib
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from nginx_edge import Edge, backend, edge_config, pool, running_edge, wait_for
from origins import Origin, start_origin

from edgeplane.node.nginx import bot_cookie
from edgeplane.node.nginx.render_bots import NJS_MODULE, flag_dir
from edgeplane.protocol.bots import BehaviourSpec, BotSpec, GoodBotSpec
from edgeplane.protocol.config import SiteSpec

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not Path(NJS_MODULE).exists(), reason="libnginx-mod-http-js missing"),
]

KEY = "6b" * 32  # the sites' cookie key (the control plane derives it; here it is given)
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/124.0 Safari/537.36"
SQLMAP = "sqlmap/1.7.2#stable (https://sqlmap.org)"
NIKTO = "Mozilla/5.00 (Nikto/2.1.6) (Evasions:None) (Test:Port Check)"
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
GOOGLE_RANGE = "127.0.0.5/32"
SITES = {
    "cookie": "cookie.localhost",
    "js": "js.localhost",
    "block": "block.localhost",
    "detect": "detect.localhost",
    "plain": "plain.localhost",
}


def bots(**kw: object) -> BotSpec:
    return BotSpec(key=KEY, **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def origin() -> Iterator[Origin]:
    o = start_origin("main")
    yield o
    o.terminate()


@pytest.fixture(scope="module")
def edge(origin: Origin) -> Iterator[Edge]:
    main = pool("origin.main", backend(origin))
    ranges = ("2001:4860:4801::/48", "::ffff:127.0.0.6/128", GOOGLE_RANGE)  # IPv6 first
    google = GoodBotSpec(name="google", user_agent="Googlebot", addresses=ranges)
    specs = {
        "cookie": bots(
            mode="challenge",
            challenge="cookie",
            automated="detect",
            good_bots=(google,),
            behaviour=BehaviourSpec(action="challenge"),
        ),
        "js": bots(mode="challenge", automated="challenge", challenge="javascript", difficulty=8),
        "block": bots(mode="block"),
        "detect": bots(mode="detect"),
        "plain": None,
    }
    sites = [
        SiteSpec(id=name, domains=(SITES[name],), pool=main.id, bots=spec)
        for name, spec in specs.items()
    ]
    with running_edge(https=False) as e:
        e.apply(edge_config(sites, [main]))
        yield e


def get(edge: Edge, site: str, path: str = "/", ua: str = BROWSER, **kw: object) -> httpx.Response:
    headers = {"User-Agent": ua, **kw.pop("headers", {})}  # type: ignore[dict-item]
    return edge.get(SITES[site], path, headers=headers, **kw)  # type: ignore[arg-type]


def challenged(r: httpx.Response) -> str | None:
    return r.headers.get("x-edgeplane-challenge")


def test_scanners_get_what_the_mode_says_and_browsers_pass_untouched(edge: Edge) -> None:
    for site in SITES:
        r = get(edge, site, "/page?x=1")
        assert r.status_code == 200 and r.headers["x-origin"] == "main", site
        assert "set-cookie" not in r.headers and challenged(r) is None
        assert r.text.endswith("/page?x=1\n")
    for ua in (SQLMAP, NIKTO):
        r = get(edge, "cookie", "/a", ua=ua)
        assert r.status_code == 307 and challenged(r) == "cookie"
        assert r.headers["location"] == "/a"  # relative: back to where it came from
        assert r.headers["cache-control"] == "no-store" and "x-origin" not in r.headers
        cookie = r.headers["set-cookie"]
        assert cookie.startswith(f"{bot_cookie.COOKIE}=c.") and "HttpOnly" in cookie
        r = get(edge, "js", "/a", ua=ua)
        assert r.status_code == 403 and challenged(r) == "javascript"
        assert "<script>" in r.text and "set-cookie" not in r.headers
        r = get(edge, "block", "/a", ua=ua)
        assert (r.status_code, r.text) == (403, "blocked\n") and "x-origin" not in r.headers
        for site in ("detect", "plain"):
            r = get(edge, site, "/a", ua=ua)
            assert r.status_code == 200 and r.headers["x-origin"] == "main"
    # HTTP libraries: counted only where automated is detect, challenged where it says so
    assert get(edge, "cookie", ua="python-requests/2.31").status_code == 200
    assert get(edge, "block", ua="python-requests/2.31").status_code == 200  # automated: off
    assert challenged(get(edge, "js", ua="python-requests/2.31")) == "javascript"
    assert challenged(get(edge, "js", ua="")) == "javascript"  # no user agent at all


def test_the_cookie_challenge_is_followed_and_its_cookie_is_bound_to_the_client(
    edge: Edge,
) -> None:
    follower = edge.client(follow_redirects=True)
    r = get(edge, "cookie", "/followed", ua=SQLMAP, client=follower)
    assert r.status_code == 200 and r.headers["x-origin"] == "main"
    assert [h.status_code for h in r.history] == [307]
    value = follower.cookies[bot_cookie.COOKIE]
    r = get(edge, "cookie", "/again", ua=SQLMAP, client=follower)
    assert r.status_code == 200 and not r.history  # served at once while the cookie lasts

    def with_cookie(cookie: str, ua: str = SQLMAP, source: str | None = None) -> int:
        client = edge.client(source)
        headers = {"Cookie": f"{bot_cookie.COOKIE}={cookie}"}
        return get(edge, "cookie", "/c", ua=ua, client=client, headers=headers).status_code

    assert with_cookie(value) == 200
    assert with_cookie(value, source="127.0.0.2") == 307  # another address
    assert with_cookie(value, ua=NIKTO) == 307  # another user agent
    kind, expiry, sig = value.split(".")
    forged = f"{kind}.{expiry}.{'0' * 32}"
    assert with_cookie(forged) == 307
    assert with_cookie(f"{kind}.{int(expiry) + 10}.{sig}") == 307  # expiry is signed
    # the edge's algorithm is bot_cookie's: a cookie made in Python with the key passes
    now = int(time.time())
    assert with_cookie(bot_cookie.cookie_value(KEY, now + 600, "127.0.0.1", SQLMAP)) == 200
    assert with_cookie(bot_cookie.cookie_value(KEY, now - 1, "127.0.0.1", SQLMAP)) == 307
    assert with_cookie(bot_cookie.cookie_value(KEY, now + 10**6, "127.0.0.1", SQLMAP)) == 307
    assert with_cookie(bot_cookie.cookie_value("00" * 32, now + 600, "127.0.0.1", SQLMAP)) == 307
    assert with_cookie("j.1.2.3") == 307 and with_cookie("x" * 300) == 307


def test_the_javascript_challenge_is_solved_by_its_algorithm(edge: Edge) -> None:
    r = get(edge, "js", "/js", ua=SQLMAP)
    m = re.search(r'var c="(j\.\d+\.[0-9a-f]{32})",b=(\d+)', r.text)
    assert m is not None, r.text
    challenge, bits = m.group(1), int(m.group(2))
    assert bits == 8
    solved = bot_cookie.solve(challenge, bits)

    def with_cookie(cookie: str) -> httpx.Response:
        headers = {"Cookie": f"{bot_cookie.COOKIE}={cookie}"}
        return get(edge, "js", "/js", ua=SQLMAP, headers=headers)

    r = with_cookie(solved)
    assert r.status_code == 200 and r.headers["x-origin"] == "main"
    nonce = int(solved.rsplit(".", 1)[1])
    unsolved = next(
        value
        for value in (f"{challenge}.{n}" for n in range(nonce + 1, nonce + 10_000))
        if not bot_cookie.zero_bits(hashlib.sha256(value.encode()).hexdigest(), bits)
    )
    assert challenged(with_cookie(unsolved)) == "javascript"
    # a cookie challenge's cookie does not pass a JavaScript challenge
    plain = bot_cookie.cookie_value(KEY, int(time.time()) + 600, "127.0.0.1", SQLMAP)
    assert challenged(with_cookie(plain)) == "javascript"


def test_a_good_bot_passes_from_its_range_only(edge: Edge) -> None:
    from_range = edge.client("127.0.0.5")
    r = get(edge, "cookie", "/robots", ua=GOOGLEBOT, client=from_range)
    assert r.status_code == 200 and challenged(r) is None
    r = get(edge, "cookie", "/robots", ua=GOOGLEBOT)  # from 127.0.0.1: an impostor
    assert r.status_code == 307 and challenged(r) == "cookie"
    r = get(edge, "block", "/robots", ua=GOOGLEBOT)  # no good bots there: a crawler like any
    assert r.status_code == 200


def test_a_flagged_address_is_challenged_without_a_reload(edge: Edge) -> None:
    flags = flag_dir(edge.local.prefix)
    master = edge.engine.process.pid
    client = edge.client("127.0.0.9")
    assert get(edge, "cookie", "/f", client=client).status_code == 200
    folder = flags / "cookie"
    folder.mkdir(parents=True, exist_ok=True)
    for d in (flags.parent, flags, folder):
        d.chmod(0o755)
    (folder / "127.0.0.9").touch()
    try:
        r = get(edge, "cookie", "/f", client=client)
        assert r.status_code == 307 and challenged(r) == "cookie"
        assert get(edge, "cookie", "/f").status_code == 200  # other addresses are not
        assert get(edge, "detect", "/f", client=client).status_code == 200  # nor other sites
    finally:
        shutil.rmtree(flags.parent)
    assert get(edge, "cookie", "/f", client=client).status_code == 200
    assert edge.engine.process.pid == master


def test_the_verdicts_are_in_the_access_log(edge: Edge) -> None:
    log = edge.local.prefix / "logs" / "access.json"
    wanted = {"bad:challenge", "bad:pass", "bad:block", "bad:detect", "impostor:challenge"}
    wanted |= {"good:pass", "automated:detect", "automated:challenge", "behaviour:challenge"}

    def seen() -> set[str]:
        return set(re.findall(r'"bot":"([a-z]+:[a-z]+)"', log.read_text()))

    assert wait_for(lambda: wanted <= seen(), 5), wanted - seen()
    plain = [line for line in log.read_text().splitlines() if '"site":"plain"' in line]
    assert plain and all('"bot":""' in line for line in plain)


@pytest.mark.skipif(shutil.which("chromium") is None, reason="no chromium")
def test_a_real_browser_solves_the_javascript_challenge(edge: Edge) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    url = f"http://{SITES['js']}:{edge.local.http_port}/browser"
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=shutil.which("chromium"),
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"],
        )  # fmt: skip
        try:
            page = browser.new_context(user_agent=f"{BROWSER} sqlmap").new_page()
            page.goto(url)
            page.wait_for_function("document.body.innerText.startsWith('main ')", timeout=10_000)
            assert "/browser" in page.inner_text("body")
            cookies = {c["name"]: c["value"] for c in page.context.cookies()}
            assert cookies[bot_cookie.COOKIE].startswith("j.")
        finally:
            browser.close()
