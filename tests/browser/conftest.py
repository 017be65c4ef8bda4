"""The browser tests' shared engines: one real ``edgeplane up`` (control plane and a local edge
node) and one Chromium for every module here, and signed-in pages for an admin and a viewer.
Each test names what it creates uniquely, so that they share the control plane without
meeting.

Playwright's synchronous API keeps an event loop running in the main thread while it is open
(``asyncio.run`` in a later test would fail): it is started by the first browser test after a
test of another kind and stopped after the last one in a row (with pytest-xdist, a worker may run
browser tests, then others, then browser tests again). The control plane stops as soon as the
last browser test of the collection has run, not at the end of the session: its edge node
would go on checking its backends beside the tests that follow. A worker does not run its files
in the collection's order (pytest-xdist hands the largest files out first), so a browser module
may still come after that: its module-scoped ``dash`` then starts a control plane again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from chromium import launch
from dashboard import require_chromium, signed_in
from processes import ControlPlane, start_up

HERE = Path(__file__).resolve().parent


class Engines:
    """What the browser tests share, stopped once (early, or at the session's end)."""

    def __init__(self) -> None:
        self.cp: ControlPlane | None = None
        self.viewer_token: str | None = None  # of ``cp``
        self.playwright: Any = None
        self.browser: Any = None

    def control_plane(self, tmp_path_factory: pytest.TempPathFactory) -> ControlPlane:
        """The running ``edgeplane up``, started if there is none (first, or again)."""
        if self.cp is None:
            self.viewer_token = None
            self.cp = start_up(tmp_path_factory.mktemp("dashboard") / "home", edge=True)
        return self.cp

    def open_browser(self) -> Any:
        if self.browser is None:
            from playwright.sync_api import sync_playwright

            self.playwright = sync_playwright().start()
            self.browser = launch(self.playwright)
        return self.browser

    def close_browser(self) -> None:
        browser, playwright = self.browser, self.playwright
        self.browser = self.playwright = None
        if browser is not None:
            browser.close()
        if playwright is not None:
            playwright.stop()

    def close(self) -> None:
        self.close_browser()
        cp, self.cp = self.cp, None
        if cp is not None:
            assert cp.stop() == 0, cp.output()


ENGINES = Engines()


def _here(item: pytest.Item) -> bool:
    return HERE in Path(str(item.path)).resolve().parents


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """After the last browser test in a row: stop Playwright; after the last of the run: stop
    the engines."""
    if nextitem is not None and _here(nextitem):
        return
    ENGINES.close_browser()
    items = item.session.items
    later = items[items.index(item) + 1 :] if item in items else []
    if not any(_here(i) for i in later):
        ENGINES.close()


@pytest.fixture(scope="session")
def engines() -> Iterator[Engines]:
    """What the browser tests share; whatever still runs stops at the session's end."""
    require_chromium()
    try:
        yield ENGINES
    finally:
        ENGINES.close()


@pytest.fixture(scope="module")
def dash(engines: Engines, tmp_path_factory: pytest.TempPathFactory) -> ControlPlane:
    """``edgeplane up`` with its local edge node, shared by the browser tests."""
    return engines.control_plane(tmp_path_factory)


@pytest.fixture
def browser(dash: ControlPlane) -> Any:
    """Chromium (started again after tests of another kind: see the module's doc)."""
    return ENGINES.open_browser()


@pytest.fixture(scope="module")
def admin_api(dash: ControlPlane) -> Iterator[httpx.Client]:
    """The API as the admin (Bearer token), to prepare and check what the pages show."""
    with httpx.Client(
        base_url=dash.url, headers={"Authorization": f"Bearer {dash.token}"}, timeout=30
    ) as client:
        yield client


@pytest.fixture(scope="module")
def viewer_token(engines: Engines, admin_api: httpx.Client) -> str:
    """A viewer of the default project (made once per control plane)."""
    if engines.viewer_token is None:
        roles = {"default": "viewer"}
        r = admin_api.post("/api/v1/tokens", json={"name": "viewer", "roles": roles})
        r.raise_for_status()
        engines.viewer_token = str(r.json()["token"])
    return engines.viewer_token


@pytest.fixture
def admin_page(browser: Any, dash: ControlPlane) -> Iterator[tuple[Any, Any]]:
    with signed_in(browser, dash.url, dash.token) as (page, watch):
        yield page, watch


@pytest.fixture
def viewer_page(browser: Any, dash: ControlPlane, viewer_token: str) -> Iterator[tuple[Any, Any]]:
    with signed_in(browser, dash.url, viewer_token) as (page, watch):
        yield page, watch
