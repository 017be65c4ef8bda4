"""The API documentation pages work offline: a real browser (Debian's Chromium, driven by
Playwright) opens ``/docs`` and ``/redoc`` of a real ``edgeplane up``; every request the pages
make goes to that control plane and succeeds, and the pages render the API's operations.

The pages' Content-Security-Policy keeps the browser from loading anything from elsewhere;
what it refused is recorded too: only ReDoc's footer logo (on its vendor's CDN) may be, which
leaves the footer's text alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from processes import ControlPlane

ROUTE = "/api/v1/infrastructure/route"
REDOC_FOOTER_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


@pytest.fixture(scope="module")
def control_plane(dash: ControlPlane) -> ControlPlane:
    """The browser tests' shared ``edgeplane up``."""
    return dash


@dataclass
class Visit:
    """What a page did: every request it made, the answers, and what went wrong."""

    requests: list[str] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    blocked: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # by the Content-Security-Policy


def visit(browser: Any, cp: ControlPlane, path: str, rendered: str) -> Visit:
    """Open ``cp.url + path`` in a fresh browser context where any request to anywhere else is
    blocked (and recorded), and wait until ``rendered`` (a Playwright selector) is visible."""
    seen = Visit()
    local = cp.url + "/"
    context = browser.new_context()

    def route(r: Any) -> None:
        url = r.request.url
        if url.startswith(local) or url.startswith("data:"):
            r.continue_()
        else:
            seen.blocked.append(url)
            r.abort()

    context.route("**/*", route)
    context.on("request", lambda req: seen.requests.append(req.url))
    context.on("response", lambda res: seen.statuses.__setitem__(res.url, res.status))

    def failed(req: Any) -> None:
        if req.failure == "csp":  # refused by the browser: it never left
            seen.refused.append(req.url)
        else:
            seen.failed.append(f"{req.url}: {req.failure}")

    context.on("requestfailed", failed)
    page = context.new_page()
    page.on("pageerror", lambda exc: seen.errors.append(str(exc)))
    try:
        page.goto(cp.url + path, wait_until="networkidle")
        page.wait_for_selector(rendered, timeout=15_000)
        page.wait_for_load_state("networkidle")
    finally:
        context.close()
    return seen


def assert_offline(
    seen: Visit, cp: ControlPlane, *assets: str, may_refuse: tuple[str, ...] = ()
) -> None:
    assert seen.blocked == [], "requests that left the control plane"
    assert set(seen.refused) <= set(may_refuse)
    assert seen.failed == []
    assert seen.errors == []
    local = (cp.url + "/", "data:")
    remote = [u for u in seen.requests if not u.startswith(local) and u not in seen.refused]
    assert remote == []
    bad = {u: s for u, s in seen.statuses.items() if s >= 400}
    assert bad == {}
    paths = {u.removeprefix(cp.url) for u in seen.requests}
    for asset in assets:
        assert asset in paths, (asset, sorted(paths))


def test_swagger_ui_works_offline(browser: Any, control_plane: ControlPlane) -> None:
    seen = visit(browser, control_plane, "/docs", f'.opblock-summary-path[data-path="{ROUTE}"]')
    assert_offline(
        seen,
        control_plane,
        "/docs",
        "/openapi.json",
        "/docs/assets/swagger-ui-bundle.js",
        "/docs/assets/swagger-ui.css",
        "/docs/assets/favicon.png",
    )


def test_redoc_works_offline(browser: Any, control_plane: ControlPlane) -> None:
    seen = visit(browser, control_plane, "/redoc", f'text="{ROUTE}"')
    assert_offline(
        seen,
        control_plane,
        "/redoc",
        "/openapi.json",
        "/docs/assets/redoc.standalone.js",
        "/docs/assets/favicon.png",
        may_refuse=(REDOC_FOOTER_LOGO,),
    )
