"""The browser tests' shared engines: one real ``edgeplane up`` (control plane and a local edge
node) for the whole run, one Chromium, and signed-in pages for an admin and a viewer. Each test
names what it creates uniquely, so that they share the control plane without meeting."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from dashboard import CHROMIUM, CHROMIUM_FLAGS, require_chromium, signed_in
from processes import ControlPlane, start_up


@pytest.fixture(scope="session")
def dash(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """``edgeplane up`` with its local edge node, for every browser test."""
    require_chromium()
    cp = start_up(tmp_path_factory.mktemp("dashboard") / "home", edge=True)
    try:
        yield cp
    finally:
        assert cp.stop() == 0, cp.output()


@pytest.fixture(scope="session")
def browser(dash: ControlPlane) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="session")
def admin_api(dash: ControlPlane) -> Iterator[httpx.Client]:
    """The API as the admin (Bearer token), to prepare and check what the pages show."""
    with httpx.Client(
        base_url=dash.url, headers={"Authorization": f"Bearer {dash.token}"}, timeout=30
    ) as client:
        yield client


@pytest.fixture(scope="session")
def viewer_token(admin_api: httpx.Client) -> str:
    r = admin_api.post("/api/v1/tokens", json={"name": "viewer", "roles": {"default": "viewer"}})
    r.raise_for_status()
    return str(r.json()["token"])


@pytest.fixture
def admin_page(browser: Any, dash: ControlPlane) -> Iterator[tuple[Any, Any]]:
    with signed_in(browser, dash.url, dash.token) as (page, watch):
        yield page, watch


@pytest.fixture
def viewer_page(browser: Any, dash: ControlPlane, viewer_token: str) -> Iterator[tuple[Any, Any]]:
    with signed_in(browser, dash.url, viewer_token) as (page, watch):
        yield page, watch
