"""Driving the dashboard in a real browser (Debian's Chromium through Playwright): a signed-in
page per role, a watch over what a page does (console errors, uncaught exceptions, failed or
refused requests, requests that leave the control plane), screenshots kept as test artifacts,
and an accessibility check (axe-core, from web/node_modules, installed by
``scripts/bootstrap --with-test``)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from chromium import CHROMIUM
from edge_agents import Api, EdgeAgent, new_agent, searchable_tmp
from processes import ControlPlane

ROOT = Path(__file__).resolve().parents[2]
AXE = ROOT / "web" / "node_modules" / "axe-core" / "axe.min.js"
ARTIFACTS = Path(os.environ.get("EDGEPLANE_TEST_ARTIFACTS", ROOT / "test-artifacts"))
SCREENSHOTS = ARTIFACTS / "screenshots"
# axe's rules for WCAG 2.0 and 2.1, levels A and AA.
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
T = TypeVar("T")


def wait_for(check: Callable[[], T | None], timeout: float, what: str, every: float = 0.3) -> T:
    """Poll ``check`` until it answers something true (returned), for ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what} ({timeout:.0f} s)")
        time.sleep(every)


@contextmanager
def project_api(
    dash: ControlPlane, admin_api: httpx.Client, project: str
) -> Iterator[httpx.Client]:
    """The admin API in ``project`` (created when missing)."""
    r = admin_api.post("/api/v1/projects", json={"id": project})
    assert r.status_code in (201, 409), r.text
    with httpx.Client(
        base_url=dash.url,
        headers={"Authorization": f"Bearer {dash.token}"},
        params={"project": project},
        timeout=30,
    ) as client:
        yield client


@contextmanager
def another_edge_node(dash: ControlPlane, name: str, region: str) -> Iterator[EdgeAgent]:
    """A real edge node besides the shared one, live; stopped and forgotten at the end."""
    edge_api = Api(dash)
    tmp = searchable_tmp(f"{name}-")
    agent = new_agent(dash, edge_api, tmp, name, region=region).start()
    try:
        wait_for(
            lambda: any(n["name"] == name and n["live"] for n in edge_api.nodes()),
            60,
            f"{name} live",
        )
        yield agent
    finally:
        agent.stop()
        for n in edge_api.nodes():
            if n["name"] == name:
                edge_api.http.delete(f"/api/v1/edge/nodes/{n['id']}")
        edge_api.close()
        shutil.rmtree(tmp, ignore_errors=True)


def require_chromium() -> None:
    if Path(CHROMIUM).exists() and shutil.which("chromium") is not None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail("Chromium is not installed; scripts/bootstrap --with-test installs it")
    pytest.skip("Chromium is not installed (run scripts/bootstrap --with-test)")


@dataclass
class Watch:
    """What the pages of a browser context did wrong. ``expect(status, url_part)`` admits an
    answer a test provokes on purpose (a refusal it then checks on the page)."""

    base: str
    errors: list[str] = field(default_factory=list)  # console errors, uncaught exceptions
    failed: list[str] = field(default_factory=list)  # requests that failed or answered >= 400
    left: list[str] = field(default_factory=list)  # requests to anywhere but the control plane
    expected: list[tuple[int, str]] = field(default_factory=list)

    def expect(self, status: int, url_part: str) -> None:
        self.expected.append((status, url_part))

    def _expected(self, status: int, url: str) -> bool:
        return any(s == status and part in url for s, part in self.expected)

    def on_console(self, msg: Any) -> None:
        if msg.type != "error":
            return
        text = msg.text
        # Chromium logs every fetch answered >= 400; those are judged by their response.
        if text.startswith("Failed to load resource: the server responded with a status of"):
            return
        self.errors.append(text)

    def on_response(self, res: Any) -> None:
        if res.status >= 400 and not self._expected(res.status, res.url):
            self.failed.append(f"{res.request.method} {res.url}: {res.status}")

    def on_failed(self, req: Any) -> None:
        failure = req.failure or ""
        if "ERR_ABORTED" in failure:  # navigated away, or a poll cancelled: not a failure
            return
        self.failed.append(f"{req.method} {req.url}: {failure}")

    def clear(self) -> None:
        self.errors.clear()
        self.failed.clear()
        self.left.clear()

    def assert_clean(self) -> None:
        assert self.left == [], "requests that left the control plane"
        assert self.errors == [], "console errors or uncaught exceptions"
        assert self.failed == [], "failed requests"


def session_cookie(base: str, token: str) -> dict[str, Any]:
    """Sign in through the API: the session cookie for a browser context."""
    r = httpx.post(f"{base}/api/v1/session", json={"token": token}, timeout=10)
    r.raise_for_status()
    value = r.cookies["edgeplane_session"]
    return {
        "name": "edgeplane_session",
        "value": value,
        "url": base,
        "httpOnly": True,
        "sameSite": "Strict",
    }


@contextmanager
def signed_in(browser: Any, base: str, token: str | None) -> Iterator[tuple[Any, Watch]]:
    """A fresh browser context (signed in with ``token``, unless None) and its page, watched;
    nothing may leave the control plane (every other request is aborted and recorded)."""
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    watch = Watch(base)

    def route(r: Any) -> None:
        if r.request.url.startswith(base + "/") or r.request.url.startswith("data:"):
            r.continue_()
        else:
            watch.left.append(r.request.url)
            r.abort()

    context.route("**/*", route)
    if token is not None:
        context.add_cookies([session_cookie(base, token)])
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.on("console", watch.on_console)
    page.on("pageerror", lambda exc: watch.errors.append(f"uncaught: {exc}"))
    page.on("response", watch.on_response)
    page.on("requestfailed", watch.on_failed)
    try:
        yield page, watch
    finally:
        context.close()


def open_page(page: Any, base: str, hash_path: str) -> None:
    """Go to ``#/hash_path`` and wait until the page's heading is there and requests settle."""
    page.goto(f"{base}/#/{hash_path.lstrip('/')}")
    page.wait_for_selector("#page-title")
    page.wait_for_load_state("networkidle")


def screenshot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / (re.sub(r"[^a-z0-9_.-]+", "-", name.lower()) + ".png")
    page.screenshot(path=str(path), full_page=True)
    return path


def accessibility_violations(page: Any) -> list[str]:
    """axe-core's WCAG 2.1 A/AA violations on the page as it is now: ``rule: target``."""
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: scripts/bootstrap --with-test installs it (npm ci in web/)")
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        # Through the DevTools protocol: the page's Content-Security-Policy refuses inline
        # scripts (as it should), so a <script> tag would not run.
        page.evaluate(AXE.read_text() + "\n;undefined")
    result = page.evaluate(
        "async (tags) => (await axe.run(document, {runOnly: {type: 'tag', values: tags}}))"
        ".violations.map(v => v.id + ': ' + v.nodes.map(n => n.target.join(' ')).join(', '))",
        AXE_TAGS,
    )
    return list(result)


LOADED = """() => { const m = document.querySelector('main');
  return !m || !m.innerText.includes('Loading'); }"""


def settled(page: Any, timeout_ms: float = 10_000) -> None:
    """Wait (up to ``timeout_ms``) until nothing on the page says it is loading."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    with contextlib.suppress(PlaywrightTimeout):  # still loading: shown and checked as it is
        page.wait_for_function(LOADED, timeout=timeout_ms)


def check_page(page: Any, watch: Watch, name: str) -> None:
    """What every page must pass, once its data is there: a screenshot kept, no accessibility
    violation, nothing failed."""
    settled(page)
    screenshot(page, name)
    assert accessibility_violations(page) == []
    watch.assert_clean()


WRITE_CONTROLS = """() => [...document.querySelectorAll(
    'form fieldset:not([disabled]) :is(input, select, textarea, button),'
    + ' button[data-write]:not([disabled])')]
  .filter(e => e.offsetParent !== null)
  .map(e => (e.labels && e.labels[0] ? e.labels[0].textContent
             : e.textContent || e.name || e.id).trim())"""


def write_controls_enabled(page: Any) -> list[str]:
    """The write controls (buttons marked data-write, controls of write forms) a viewer could
    use on the page as it is now: each by its label or text."""
    return list(page.evaluate(WRITE_CONTROLS))


# The shared control plane's own edge node and the sites tests serve through it -----------------

EDGE_NODE = "local"  # the edge node of the shared ``edgeplane up``


@dataclass
class Site:
    """A test's site: its project, its domain and the admin API in that project."""

    project: str
    domain: str
    api: httpx.Client


def applied(admin_api: httpx.Client, revision: int) -> None:
    """Wait until the shared edge node applied ``revision``."""

    def done() -> bool:
        nodes = admin_api.get("/api/v1/edge/nodes").json()
        return any(
            n["name"] == EDGE_NODE and (n["applied_revision"] or 0) >= revision for n in nodes
        )

    wait_for(done, 30, f"revision {revision} applied by the edge node")


def through_edge(
    dash: ControlPlane, domain: str, path: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    """``GET path`` of ``domain`` through the shared edge node (plain HTTP)."""
    return httpx.get(
        f"http://127.0.0.1:{dash.http_port}{path}",
        headers={**(headers or {}), "Host": domain},
        timeout=10,
    )


def field_error(scope: Any, label: str) -> str:
    """The error shown under the field labelled ``label`` in ``scope`` (a page or a locator;
    empty when none)."""
    control = scope.get_by_label(label, exact=True)
    described = control.get_attribute("aria-describedby") or ""
    if not described.endswith("-error"):
        return ""
    page = getattr(scope, "page", scope)  # a locator's page, or the page itself
    return str(page.locator(f'[id="{described}"]').inner_text())
