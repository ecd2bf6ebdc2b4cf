"""Fixtures shared by the test directories, and the suite's markers.

The chat product's fixtures: users (`alice`, `bob`), her `conversation`, logged-in WebSocket `tabs`,
her API token and client (`alice_token`, `api`), the offline model's pace (`paced`); every test gets
a fresh in-memory channel layer, and every asyncio test lets the runs it started settle. Plain helpers
are in `tests.support`.

Markers, given here by where a test lives: `browser` (drives Chromium) and `live` (starts server
processes on loopback); `make test-fast` runs the suite without both. Browser tests run last: while
Playwright's sync API holds Chromium (one for the session), the main thread counts as running its
event loop, which no other test could share.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import pytest_asyncio
from channels.layers import channel_layers
from django.contrib.auth.models import User

from agent_runtime.llm import ModelConfig
from api.services import api_token_create
from conversations.models import Conversation
from conversations.process import process_state
from tests.support.api import TokenClient
from tests.support.tabs import Tab, open_tab
from tests.support.users import make_user

TESTS = Path(__file__).resolve().parent
BROWSER_TESTS = ("e2e",)
"""Where the tests driving Chromium live (relative to tests/)."""
LIVE_TESTS = ("e2e", "deployment", "bench", "api/test_live.py")
"""Where the tests starting server processes live: `tests.live_server`'s deployments, the benchmark's
servers and model server."""


def _under(item: pytest.Item, places: tuple[str, ...]) -> bool:
    try:
        relative = item.path.resolve().relative_to(TESTS).as_posix()
    except ValueError:
        return False
    return any(relative == place or relative.startswith(place + "/") for place in places)


@pytest.hookimpl(tryfirst=True)  # before `-m` selects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _under(item, BROWSER_TESTS):
            item.add_marker(pytest.mark.browser)
        if _under(item, LIVE_TESTS):
            item.add_marker(pytest.mark.live)
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)  # stable: order kept otherwise


# --- the process ----------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def fresh_channel_layer():
    """Each test gets its own in-memory channel layer (its queues belong to the test's loop)."""
    channel_layers.backends = {}
    yield
    channel_layers.backends = {}


@pytest_asyncio.fixture
async def runs_settle() -> AsyncIterator[None]:
    """Let every run started by the test finish before the next test."""
    yield
    active = list(process_state().runs.values())
    tasks = [run.task for run in active if run.task]
    for run in active:
        run.stop()
    await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 10)


@pytest.fixture(autouse=True)
def asyncio_tests_let_runs_settle(request: pytest.FixtureRequest, fresh_channel_layer: None) -> None:
    """Every asyncio test ends with `runs_settle`, on its own loop, while its channel layer is still
    there. A run's task belongs to the loop of the test that started it, so only an asyncio test can
    leave one behind; the other tests (Playwright's sync ones among them, which cannot share the
    thread with a running loop) get no loop for it."""
    if request.node.get_closest_marker("asyncio") is not None:
        request.getfixturevalue("runs_settle")


@pytest.fixture
def paced(settings) -> Callable[[float], None]:
    """Make the offline model stream at `tokens_per_second` (tests default to full speed)."""

    def set_pace(tokens_per_second: float) -> None:
        settings.AGENT_MODEL = ModelConfig(offline_tokens_per_second=tokens_per_second)

    return set_pace


# --- people and their conversations ---------------------------------------------------------------


@pytest.fixture
def alice(transactional_db) -> User:
    return make_user("alice")


@pytest.fixture
def bob(transactional_db) -> User:
    return make_user("bob")


@pytest.fixture
def conversation(alice) -> Conversation:
    return Conversation.objects.create(owner=alice)


@pytest_asyncio.fixture
async def tabs(conversation, alice) -> AsyncIterator[Callable]:
    """Open logged-in tabs on the conversation; each has received its snapshot."""
    opened: list[Tab] = []

    async def open_one() -> Tab:
        tab, connected, _ = await open_tab(conversation.pk, alice)
        assert connected
        tab.snapshot = await tab.receive()
        assert tab.snapshot["type"] == "snapshot"
        opened.append(tab)
        return tab

    yield open_one
    for tab in opened:
        await tab.communicator.disconnect()


# --- the HTTP API ---------------------------------------------------------------------------------


@pytest.fixture
def alice_token(alice: User) -> str:
    return api_token_create(user=alice, name="tests").secret


@pytest.fixture
def api(alice_token: str) -> TokenClient:
    """An async client that authenticates as alice with her token."""
    return TokenClient(alice_token)
