"""Request corpora for WAF tests: the CRS's own attacks (a fixture) and benign traffic.

``attacks()`` reads ``tests/fixtures/waf/crs_attacks.json`` (extracted from the CRS's
regression tests by ``tests/fixtures/waf/extract_crs_payloads.py``, each with its test id).

``benign(n, seed)`` makes ``n`` real-looking requests, the same for the same seed: browsers'
user agents and headers (Accept, Accept-Language, Accept-Encoding, Referer, cookies of
sessions, analytics and consent), pages, assets, paginated and filtered listings, searches
with names, e-mail addresses and punctuation, login / sign-up / contact / checkout forms,
JSON API calls (POST, PUT, PATCH, DELETE). ``send`` replays requests over keep-alive
connections from a thread pool.
"""

from __future__ import annotations

import http.client
import json
import random
import re
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "waf" / "crs_attacks.json"


@dataclass(frozen=True)
class Req:
    name: str  # the CRS test id, or benign-<n>
    method: str
    uri: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None


def attacks() -> list[Req]:
    doc = json.loads(FIXTURE.read_text())
    out = []
    for a in doc["attacks"]:
        body = a["body"].encode("latin-1") if a["body"] is not None else None
        out.append(Req(a["test"], a["method"], a["uri"], dict(a["headers"]), body))
    return out


USER_AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.80",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4.1 Safari/605.1.15",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.4; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/123.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.6367.82 Mobile Safari/537.36",
    "Mozilla/5.0 (Linux; Android 13; SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) "
    "SamsungBrowser/24.0 Chrome/117.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (iPad; CPU OS 16_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "CriOS/124.0.6367.88 Mobile/15E148 Safari/604.1",
]
LANGUAGES = [
    "en-US,en;q=0.9",
    "en-GB,en;q=0.8",
    "de-DE,de;q=0.9,en-US;q=0.8,en;q=0.7",
    "fr-FR,fr;q=0.9,en;q=0.8",
    "es-ES,es;q=0.9",
    "ja-JP,ja;q=0.9,en;q=0.8",
    "pt-BR,pt;q=0.9,en-US;q=0.8",
]
ACCEPT_HTML = (
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8"
)
FIRST = [
    "Anna",
    "Jean-Luc",
    "Zoë",
    "Mohammed",
    "Siobhán",
    "Łukasz",
    "Mary Ann",
    "José",
    "Chen",
    "Oluwaseun",
    "Björn",
    "Priya",
    "D'Andre",
    "Renée",
    "Hiroshi",
    "Kateřina",
]
LAST = [
    "O'Brien",
    "Smith-Jones",
    "García",
    "Müller",
    "van der Berg",
    "Nguyen",
    "Østergaard",
    "MacDonald",
    "Dubois",
    "Kowalski",
    "Rossi",
    "Ahmed",
    "St. John",
    "de la Cruz",
]
DOMAINS = [
    "gmail.com",
    "yahoo.co.uk",
    "outlook.com",
    "example.org",
    "mail.example.de",
    "company.io",
    "uni-heidelberg.de",
]
PRODUCTS = [
    "running shoes",
    '4k monitor 27"',
    "usb-c cable (2 m)",
    "coffee grinder",
    "women's rain jacket",
    "kids' bike 16 inch",
    "noise-cancelling headphones",
    "stainless steel water bottle 750ml",
    "book: the art of computer programming",
    "lego star wars",
    "ergonomic chair",
    "smartphone case - iphone 15 pro",
    "garden hose 25m",
    "organic green tea, 100 bags",
    "standing desk 140x70",
]
QUERIES = [
    "how to reset my password",
    "best pizza near me",
    "C++ tutorial for beginners",
    "rock & roll hall of fame",
    "50% off sale",
    "what's new in python 3.12",
    "cheap flights paris -> rome",
    "is it safe to eat raw cookie dough?",
    "weather tomorrow",
    "1 cup = how many ml",
    "email@example.com not receiving",
    "error 404 page not found",
    "résumé template",
    "tickets for the 2024 final",
    "jobs #remote #python",
    "order #A-10023 status",
    "size 10.5 (US)",
    "price < 100 and rating > 4",
    "the lord of the rings: the two towers",
    "mother's day gifts",
    "Q3 2023 report.pdf",
    "new york ~ boston train",
    "café au lait recipe",
    "vitamin d3 + k2",
    "pay with paypal; shipping to canada",
    "#1 bestseller",
    "100% cotton t-shirt",
    "can't log in",
    "10 @ 5 dollars",
]
WORDS = [
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "the",
    "lazy",
    "dog",
    "while",
    "we",
    "wait",
    "for",
    "our",
    "order",
    "to",
    "arrive",
    "on",
    "monday",
    "please",
    "call",
    "me",
    "back",
    "after",
    "5",
    "pm",
    "thanks",
    "a",
    "lot",
    "for",
    "your",
    "help",
    "and",
    "have",
    "a",
    "nice",
    "weekend",
    "best",
    "regards",
]
CATEGORIES = ["shoes", "electronics", "books", "garden", "toys", "kitchen", "sports", "beauty"]
BLOG = [
    "how-we-cut-our-cloud-bill-in-half",
    "10-tips-for-better-sleep",
    "release-notes-v2-3",
    "a-guide-to-sourdough",
    "why-we-moved-to-postgres",
    "hello-world",
]


def _name(rng: random.Random) -> tuple[str, str]:
    return rng.choice(FIRST), rng.choice(LAST)


def _email(rng: random.Random) -> str:
    first, last = _name(rng)
    local = f"{first}.{last}".lower()
    local = "".join(c for c in local if c.isascii() and (c.isalnum() or c in ".-_"))
    if rng.random() < 0.3:
        local += f"+{rng.choice(['news', 'shop', 'work'])}"
    return (
        f"{local or 'user'}{rng.randint(1, 99) if rng.random() < 0.4 else ''}@{rng.choice(DOMAINS)}"
    )


def _sentence(rng: random.Random, n: int) -> str:
    text = " ".join(rng.choice(WORDS) for _ in range(n)).capitalize()
    return text + rng.choice([".", "!", "?", "...", " :)"])


def _cookies(rng: random.Random) -> str:
    parts = [
        f"_ga=GA1.1.{rng.randint(10**8, 10**9)}.{rng.randint(1_600_000_000, 1_700_000_000)}",
        f"session={rng.getrandbits(128):032x}",
    ]
    if rng.random() < 0.5:
        parts.append("cookie_consent=necessary%2Canalytics")
    if rng.random() < 0.3:
        parts.append(f"cart_id={rng.randint(1000, 99999)}")
    if rng.random() < 0.3:
        parts.append(f"lang={rng.choice(['en', 'de', 'fr'])}")
    return "; ".join(parts)


def _browser(rng: random.Random, host: str, accept: str = ACCEPT_HTML) -> dict[str, str]:
    headers = {
        "User-Agent": rng.choice(USER_AGENTS),
        "Accept": accept,
        "Accept-Language": rng.choice(LANGUAGES),
        "Accept-Encoding": "gzip, deflate, br",
    }
    if rng.random() < 0.7:
        headers["Cookie"] = _cookies(rng)
    if rng.random() < 0.6:
        ref = rng.choice([f"https://{host}/", "https://www.google.com/", f"https://{host}/shop"])
        headers["Referer"] = ref
    if rng.random() < 0.3:
        headers["Upgrade-Insecure-Requests"] = "1"
    return headers


def _page(rng: random.Random, host: str) -> tuple[str, str, dict[str, str], bytes | None]:
    kind = rng.randrange(12)
    if kind == 0:
        return "GET", "/", _browser(rng, host), None
    if kind == 1:
        return "GET", f"/products/{rng.randint(1, 99999)}", _browser(rng, host), None
    if kind == 2:
        q = {"q": rng.choice(QUERIES + PRODUCTS), "page": rng.randint(1, 5)}
        if rng.random() < 0.4:
            q["sort"] = rng.choice(["price", "-price", "newest", "relevance"])
        return "GET", f"/search?{urlencode(q)}", _browser(rng, host), None
    if kind == 3:
        cat = rng.choice(CATEGORIES)
        q = {
            "color": rng.choice(["red", "navy blue", "black"]),
            "size": rng.choice(["S", "M", "XL", "42"]),
            "min_price": rng.randint(0, 50),
            "max_price": rng.randint(60, 500),
        }
        return "GET", f"/c/{cat}?{urlencode(q)}", _browser(rng, host), None
    if kind == 4:
        asset = rng.choice(
            [
                "app.3f2a9c1b.js",
                "styles.8d1e.css",
                "vendor.min.js",
                "logo.svg",
                f"img/hero-{rng.randint(1, 9)}.webp",
                "fonts/inter-var.woff2",
                "favicon.ico",
            ]
        )
        h = _browser(rng, host, accept="*/*")
        return "GET", f"/static/{asset}", h, None
    if kind == 5:
        slug = rng.choice(BLOG)
        uri = f"/blog/{rng.randint(2019, 2024)}/{rng.randint(1, 12):02d}/{slug}"
        if rng.random() < 0.3:
            source = rng.choice(["newsletter", "twitter", "google"])
            uri += f"?utm_source={source}&utm_medium=email&utm_campaign=spring_sale_2024"
        return "GET", uri, _browser(rng, host), None
    if kind == 6:
        first, last = _name(rng)
        form = {
            "name": f"{first} {last}",
            "email": _email(rng),
            "subject": rng.choice(["Question about my order", "Refund?", "Partnership"]),
            "message": _sentence(rng, rng.randint(8, 40)) + "\r\n\r\n" + f"-- {first}",
        }
        h = _browser(rng, host)
        h["Content-Type"] = "application/x-www-form-urlencoded"
        h["Origin"] = f"https://{host}"
        return "POST", "/contact", h, urlencode(form).encode()
    if kind == 7:
        form = {
            "email": _email(rng),
            "password": f"{rng.choice(WORDS)}{rng.randint(10, 99)}!{rng.choice(WORDS).upper()}",
            "remember": "on",
            "csrf_token": f"{rng.getrandbits(160):040x}",
        }
        h = _browser(rng, host)
        h["Content-Type"] = "application/x-www-form-urlencoded"
        return "POST", rng.choice(["/login", "/account/sign-in"]), h, urlencode(form).encode()
    if kind == 8:
        first, last = _name(rng)
        body = {
            "items": [
                {
                    "sku": f"SKU-{rng.randint(1000, 9999)}",
                    "qty": rng.randint(1, 3),
                    "name": rng.choice(PRODUCTS),
                }
                for _ in range(rng.randint(1, 4))
            ],
            "shipping": {
                "name": f"{first} {last}",
                "street": f"{rng.randint(1, 200)} Main St., Apt. 4B",
                "city": rng.choice(["Zürich", "São Paulo", "New York", "Kraków"]),
                "zip": f"{rng.randint(10000, 99999)}",
                "country": rng.choice(["CH", "BR", "US", "PL"]),
            },
            "coupon": rng.choice([None, "SPRING24", "WELCOME-10"]),
            "gift": rng.random() < 0.2,
            "note": rng.choice(["", "Leave at the door, please!", "Ring twice (bell's broken)"]),
        }
        h = _browser(rng, host, accept="application/json")
        h["Content-Type"] = "application/json"
        return "POST", "/api/v1/checkout", h, json.dumps(body).encode()
    if kind == 9:
        user = rng.randint(1, 5000)
        method = "PUT"  # (the test origin answers no PATCH)
        first, last = _name(rng)
        body = {
            "display_name": f"{first} {last}",
            "bio": _sentence(rng, rng.randint(5, 20)),
            "website": f"https://{re.sub('[^a-z]', '', last.lower()) or 'me'}.example.com/about",
            "newsletter": rng.random() < 0.5,
            "timezone": rng.choice(["Europe/Berlin", "America/New_York"]),
        }
        h = _browser(rng, host, accept="application/json")
        h["Content-Type"] = "application/json"
        h["Authorization"] = f"Bearer {rng.getrandbits(256):064x}"
        return method, f"/api/v1/users/{user}", h, json.dumps(body).encode()
    if kind == 10:
        q = {
            "page": rng.randint(1, 20),
            "per_page": rng.choice([10, 25, 50]),
            "state": rng.choice(["shipped", "pending", "cancelled"]),
            "from": "2024-01-01",
            "to": "2024-03-31",
            "fields": "id,total,created_at",
        }
        h = _browser(rng, host, accept="application/json")
        h["X-Requested-With"] = "XMLHttpRequest"
        return "GET", f"/api/v1/orders?{urlencode(q)}", h, None
    first, last = _name(rng)
    q = {
        "user": f"{first} {last}",
        "email": _email(rng),
        "ref": rng.choice(["nav", "footer", "email-footer"]),
    }
    return (
        "GET",
        f"/account/{quote(rng.choice(['profile', 'settings', 'addresses']))}?{urlencode(q)}",
        _browser(rng, host),
        None,
    )


def benign(n: int, seed: int = 18) -> list[Req]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        method, uri, headers, body = _page(rng, "shop.example")
        out.append(Req(f"benign-{i}", method, uri, headers, body))
    return out


class Sender:
    """Requests over keep-alive connections (one per thread) to ``127.0.0.1:port``."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._local = threading.local()

    def _conn(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        return conn

    def one(self, host: str, req: Req) -> tuple[int, dict[str, str], bytes]:
        headers = {**req.headers, "Host": host}
        for attempt in (0, 1):
            conn = self._conn()
            try:
                conn.request(req.method, req.uri, body=req.body, headers=headers)
                resp = conn.getresponse()
                body = resp.read()
                if resp.getheader("Connection", "").lower() == "close":
                    conn.close()
                    self._local.conn = None
                return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body
            except (http.client.HTTPException, OSError):
                conn.close()
                self._local.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def many(
        self, host: str, reqs: Iterable[Req], threads: int = 8
    ) -> list[tuple[Req, int, dict[str, str], bytes]]:
        listed = list(reqs)

        def run(req: Req) -> tuple[Req, int, dict[str, str], bytes]:
            return (req, *self.one(host, req))

        with ThreadPoolExecutor(threads) as pool:
            return list(pool.map(run, listed))


def by_status(results: list[tuple[Req, int, Any, Any]], keep: Callable[[int], bool]) -> list[str]:
    return [f"{req.name} {status}" for req, status, _, _ in results if keep(status)]
