"""Fixtures for the browser tests: one Chromium and one live deployment for the session, a fresh
browser profile per test.

The servers run the production settings on 127.0.0.1 with the offline demo model at a pace a
person can watch (`TOKENS_PER_SECOND`), or with the real langchain-openai path against
`tests.fake_openai`. Chromium is the system one (`require_chromium`), launched headless. Every
module shares `deployment`, `server` and `openai_server` (each test signs up a user of its own);
a module that needs other settings starts a server of its own on that deployment, or overrides
`deployment` with one of its own. The fake OpenAI server forgets its script and requests before
each test that uses it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, expect, sync_playwright

from tests.fake_openai import FakeOpenAI
from tests.live_server import Deployment, Server
from tests.services import require_chromium
from tests.support.browser import EXPECT_TIMEOUT_MS
from tests.support.deployments import live_deployment

TOKENS_PER_SECOND = 30
VIEWPORT = {"width": 800, "height": 900}
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]

expect.set_options(timeout=EXPECT_TIMEOUT_MS)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """One headless Chromium for the session (the browser tests run last: see tests/conftest.py)."""
    executable = require_chromium()
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh browser profile (its own cookies) for one test; its pages are tabs."""
    ctx = browser.new_context(viewport=VIEWPORT)
    ctx.set_default_timeout(EXPECT_TIMEOUT_MS)
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture(scope="session")
def deployment() -> Iterator[Deployment]:
    """A SQLite deployment; its servers answer with the offline demo model at a visible pace."""
    require_chromium()
    with live_deployment(tokens_per_second=TOKENS_PER_SECOND) as deployment:
        yield deployment


@pytest.fixture(scope="session")
def server(deployment: Deployment) -> Server:
    return deployment.start_server()


@pytest.fixture(scope="session")
def fake_openai_server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture(autouse=True)
def fresh_fake_openai(request: pytest.FixtureRequest) -> None:
    """A test using the shared fake OpenAI server finds it with nothing scripted or recorded."""
    if "fake_openai_server" in request.fixturenames:
        request.getfixturevalue("fake_openai_server").reset()


@pytest.fixture(scope="session")
def openai_server(deployment: Deployment, fake_openai_server: FakeOpenAI) -> Server:
    """A second server on the same database whose model is langchain-openai talking to the fake OpenAI server."""
    return deployment.start_server(
        OPENAI_API_KEY="test", OPENAI_BASE_URL=fake_openai_server.base_url, OPENAI_MAX_RETRIES="0"
    )
