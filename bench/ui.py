"""The dashboard in a real browser: first load, what it transfers, and the domain list at
10,000 domains.

Run from the repository root::

    .venv/bin/python bench/ui.py [--quick] [--domains 10000] [--samples 5] [--keep DIR]
                                 [--markdown]

A control plane (``edgeplane up --no-edge``, SQLite) is started on a home holding ``--domains``
domains in the ``default`` project (made through the service layer as ``bench/snapshot.py``
makes them; ``--keep DIR`` keeps that home for the next runs) and 60 domains in a project
``small``, the reference. Debian's Chromium, driven by Playwright, headless, on loopback:

1. **First load**: a fresh browser context each time (cold cache, signed in with a session
   cookie): from navigation to the overview on screen with every card's data (no "Loading"
   left); the
   reference is the API's own documentation page (``/docs``, Swagger UI from the same server)
   until its operations are on screen.
2. **Transferred**: the compressed bytes of JavaScript and CSS (``transferSize`` of the
   resource timings) on that first load, and after visiting every page of the dashboard once;
   against ``/docs``.
3. **Domain list**: open ``#/domains``; search (type a name into the search box: from the last
   key to the table showing the match, the debounce included); next page (click: until the
   first row changes). At ``--domains`` domains, against the same at 60 (project ``small``).

Everything started is stopped and the temporary directory removed on exit, error, Ctrl-C or
SIGTERM. Progress goes to stderr, results to stdout.
"""

from __future__ import annotations

import argparse
import functools
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

# This folder holds dns.py: as a script's folder it would come first on sys.path and hide
# dnspython's ``dns`` package from edgeplane. It goes last instead (for common.py, edge.py).
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or os.curdir).resolve() != _HERE]
sys.path.append(str(_HERE))

from common import BenchRun, log, pct, signals_raise, table  # noqa: E402
from edge import free_port, stop_process, wait_until  # noqa: E402
from snapshot import prepared  # noqa: E402

# How the browser tests start Chromium (tests/browser/chromium.py), last on the path as well.
sys.path.append(str(_HERE.parent / "tests" / "browser"))
from chromium import CHROMIUM, launch  # noqa: E402

SMALL = "small"
SMALL_DOMAINS = 60  # three pages of the list
ROUTES = ["", "domains", "certificates", "cdn", "load-balancers", "map", "inventory", "alerts",
          "audit", "access"]  # fmt: skip
# Every card of the page has its data: nothing says "Loading" any more (not Playwright's
# "networkidle", which waits for 500 ms without a request, and the overview polls).
LOADED = """() => { const m = document.querySelector('main');
  return m && !m.innerText.includes('Loading'); }"""
TRANSFERRED_JS = """() => performance.getEntriesByType('resource')
  .filter(e => /\\.(js|css)(\\?|$)/.test(e.name))
  .reduce((n, e) => n + e.transferSize, 0)"""


class ControlPlane:
    def __init__(self, run: BenchRun, home: Path) -> None:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("EDGEPLANE_")}
        with (run.tmp / "cp.log").open("w") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "edgeplane", "up", "--no-edge", "--home", str(home),
                 "--api-port", str(port)],
                stdout=out, stderr=subprocess.STDOUT, env=env,
            )  # fmt: skip
        run.cleanup.add(functools.partial(stop_process, self.process, timeout=60))
        self.url = f"http://127.0.0.1:{port}"
        wait_until(lambda: httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200, 90,
                   "control plane")  # fmt: skip
        self.token = (home / "admin-token").read_text().strip()
        self.api = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.token}"}, timeout=120
        )
        run.cleanup.add(self.api.close)

    def small_project(self, n: int = SMALL_DOMAINS) -> None:
        r = self.api.post("/api/v1/projects", json={"id": SMALL})
        assert r.status_code in (201, 409), r.text
        for i in range(n):
            r = self.api.post("/api/v1/infrastructure/domains", params={"project": SMALL},
                              json={"domain": f"s{i}.small.example.com"})  # fmt: skip
            assert r.status_code in (201, 409), r.text

    def cookie(self) -> dict[str, Any]:
        r = httpx.post(f"{self.url}/api/v1/session", json={"token": self.token}, timeout=10)
        r.raise_for_status()
        return {"name": "edgeplane_session", "value": r.cookies["edgeplane_session"],
                "url": self.url, "httpOnly": True, "sameSite": "Strict"}  # fmt: skip


@contextmanager
def fresh(browser: Any, cp: ControlPlane, project: str = "default") -> Iterator[Any]:
    """A cold browser context signed in, with ``project`` chosen."""
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    context.add_cookies([cp.cookie()])
    context.add_init_script(f"localStorage.setItem('edgeplane.project', {project!r})")
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        yield page
    finally:
        context.close()


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return (time.perf_counter() - started) * 1000


def first_load(browser: Any, cp: ControlPlane, samples: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"ui": [], "docs": [], "ui_bytes": [], "docs_bytes": []}
    for _ in range(samples):
        with fresh(browser, cp) as page:
            def go() -> None:
                page.goto(f"{cp.url}/")
                page.wait_for_selector("#page-title")
                page.wait_for_function(LOADED)

            out["ui"].append(timed(go))
            out["ui_bytes"].append(float(page.evaluate(TRANSFERRED_JS)))
        with fresh(browser, cp) as page:
            def docs() -> None:
                page.goto(f"{cp.url}/docs")
                page.wait_for_selector(".opblock-summary-path")

            out["docs"].append(timed(docs))
            out["docs_bytes"].append(float(page.evaluate(TRANSFERRED_JS)))
    return out


def every_page_bytes(browser: Any, cp: ControlPlane) -> float:
    with fresh(browser, cp) as page:
        page.goto(f"{cp.url}/")
        page.wait_for_selector("#page-title")
        for route in ROUTES:
            page.evaluate(f"location.hash = '#/{route}'")
            page.wait_for_selector("#page-title")
            page.wait_for_load_state("networkidle")
        return float(page.evaluate(TRANSFERRED_JS))


FIRST_LINK = "table tbody tr td a"
CHANGED = """b => { const a = document.querySelector('table tbody tr td a');
  return a && a.textContent !== b; }"""
ALL_MATCH = """p => { const rows = document.querySelectorAll('table tbody tr td a');
  return rows.length >= 1 && [...rows].every(a => a.textContent.includes(p)); }"""


def list_sample(page: Any, cp: ControlPlane, probe: str, out: dict[str, list[float]]) -> None:
    page.goto(f"{cp.url}/")
    page.wait_for_selector("#page-title")

    def open_list() -> None:
        page.evaluate("location.hash = '#/domains'")
        page.wait_for_selector(FIRST_LINK)

    out["open"].append(timed(open_list))
    next_button = page.get_by_role("button", name="Next page")

    def next_page() -> None:
        before = page.locator(FIRST_LINK).first.inner_text()
        next_button.click()
        page.wait_for_function(CHANGED, arg=before)

    if next_button.is_enabled():
        out["next"].append(timed(next_page))

    def search() -> None:
        page.get_by_label("Search domains").fill(probe)
        page.wait_for_function(ALL_MATCH, arg=probe)

    out["search"].append(timed(search))


def domain_list(browser: Any, cp: ControlPlane, project: str, probe: str, samples: int
                ) -> dict[str, list[float]]:  # fmt: skip
    """Open the list, go to the next page, search for ``probe`` (part of a domain's name)."""
    out: dict[str, list[float]] = {"open": [], "search": [], "next": []}
    for _ in range(samples):
        with fresh(browser, cp, project) as page:
            list_sample(page, cp, probe, out)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="200 domains, 1 sample")
    parser.add_argument("--domains", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=5)
    parser.add_argument("--keep", type=Path, help="keep the home with the domains here")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.domains, args.samples = 200, 1
    if not Path(CHROMIUM).exists():
        log(f"{CHROMIUM} is missing: scripts/bootstrap --with-test installs it")
        return 2
    run = BenchRun("ui")
    rows: list[list[str]] = []
    try:
        with signals_raise():
            home = prepared(run, args.domains, args.keep)
            cp = ControlPlane(run, home)
            cp.small_project()
            from playwright.sync_api import sync_playwright

            with sync_playwright() as p:
                browser = launch(p)
                try:
                    log("first load")
                    load = first_load(browser, cp, args.samples)
                    log("every page")
                    all_bytes = every_page_bytes(browser, cp)
                    log(f"domain list, {args.domains:,} domains")
                    probe = f"d{args.domains * 5 // 8}."  # one domain's name, and no other's
                    big = domain_list(browser, cp, "default", probe, args.samples)
                    log(f"domain list, {SMALL_DOMAINS} domains")
                    small = domain_list(browser, cp, SMALL, "s37.", args.samples)
                finally:
                    browser.close()
        rows += [
            ["first load to overview on screen, p50 ms (vs /docs)",
             f"{pct(load['ui'], 50):.0f}", f"{pct(load['docs'], 50):.0f}",
             f"{pct(load['ui'], 50) / pct(load['docs'], 50):.2f}"],
            ["first load, max ms", f"{max(load['ui']):.0f}", f"{max(load['docs']):.0f}", ""],
            ["JS+CSS transferred, first load, KB (vs /docs)",
             f"{pct(load['ui_bytes'], 50) / 1000:.1f}", f"{pct(load['docs_bytes'], 50) / 1000:.1f}",
             f"{pct(load['ui_bytes'], 50) / pct(load['docs_bytes'], 50):.2f}"],
            ["JS+CSS transferred, every page visited, KB", f"{all_bytes / 1000:.1f}",
             f"{pct(load['docs_bytes'], 50) / 1000:.1f}",
             f"{all_bytes / pct(load['docs_bytes'], 50):.2f}"],
        ]  # fmt: skip
        n = f"{args.domains:,} domains"
        for key, label in (("open", "open the domain list"), ("search", "search (typing to rows)"),
                           ("next", "next page")):  # fmt: skip
            if not big[key] or not small[key]:
                continue
            rows.append([f"{n}: {label}, p50 ms (vs {SMALL_DOMAINS})", f"{pct(big[key], 50):.0f}",
                         f"{pct(small[key], 50):.0f}",
                         f"{pct(big[key], 50) / pct(small[key], 50):.2f}"])  # fmt: skip
            rows.append([f"{n}: {label}, max ms", f"{max(big[key]):.0f}",
                         f"{max(small[key]):.0f}", ""])  # fmt: skip
    except KeyboardInterrupt:
        log("interrupted")
        run.close()
        return 130
    finally:
        run.close()
    print(table(rows, args.markdown))
    return run.status()


if __name__ == "__main__":
    sys.exit(main())
