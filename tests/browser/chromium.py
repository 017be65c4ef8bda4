"""Debian's Chromium as the browser tests and ``bench/ui.py`` drive it (through Playwright):
where it is and the flags it is started with (no sandbox as root, nothing that reaches out to
the network on its own)."""

from __future__ import annotations

from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def launch(playwright: Any) -> Any:
    """A headless Chromium from a started Playwright (``sync_playwright().start()``)."""
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
