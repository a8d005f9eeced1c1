"""Debian's Chromium for the browser tests, headless and kept to this machine.

`tests/conftest.py` makes the `browser` and `outside_requests` fixtures of it;
`tests/test_browser.py` (JupyterLab, TensorBoard) and `tests/test_site.py` (the course site) use
them. Playwright drives this browser; `playwright install` is never needed.
"""

from __future__ import annotations

import contextlib
import os
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("TFCOURSE_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    # Names other than this machine's do not resolve: nothing leaves loopback by name.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
]


@contextlib.contextmanager
def launch() -> Iterator[object]:
    """Chromium, headless, with a fresh profile; the test is skipped (failed in CI) without it."""
    if not CHROMIUM.exists():
        message = f"no Chromium at {CHROMIUM}: `apt-get install chromium` (.ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            chromium.close()


def keep_to_loopback(context, outside: list[str]) -> None:
    """Let `context`'s pages reach this machine only; refuse and record every other URL."""

    def route(request_route):
        host = urllib.parse.urlsplit(request_route.request.url).hostname or ""
        if host in ("127.0.0.1", "localhost", "::1") or request_route.request.url.startswith(
            ("data:", "blob:")
        ):
            request_route.continue_()
        else:
            outside.append(request_route.request.url)
            request_route.abort()

    context.route("**/*", route)
