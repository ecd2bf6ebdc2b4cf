"""Fixtures for the chat product: users, logged-in WebSocket tabs, a clean channel layer."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio
from channels.db import database_sync_to_async
from channels.layers import channel_layers
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from django.test import Client

from agent_runtime.llm import ModelConfig
from chatsite.asgi import application
from conversations.models import Conversation
from conversations.process import process_state
from tests.tabs import TabFrames

ORIGIN = b"http://localhost"
FRAME_TIMEOUT = 10


@pytest.fixture(autouse=True)
def fresh_channel_layer():
    """Each test gets its own in-memory channel layer (its queues belong to the test's loop)."""
    channel_layers.backends = {}
    yield
    channel_layers.backends = {}


@pytest_asyncio.fixture(autouse=True)
async def runs_settle():
    """Let every run started by the test finish before the next test."""
    yield
    active = list(process_state().runs.values())
    tasks = [run.task for run in active if run.task]
    for run in active:
        run.stop()
    await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 10)


@pytest.fixture
def paced(settings) -> Callable[[float], None]:
    """Make the offline model stream at `tokens_per_second` (tests default to full speed)."""

    def set_pace(tokens_per_second: float) -> None:
        settings.AGENT_MODEL = ModelConfig(offline_tokens_per_second=tokens_per_second)

    return set_pace


def make_user(username: str, **extra: Any) -> User:
    return User.objects.create_user(username=username, password="a-long-test-password", **extra)


@pytest.fixture
def alice(transactional_db) -> User:
    return make_user("alice")


@pytest.fixture
def bob(transactional_db) -> User:
    return make_user("bob")


@pytest.fixture
def conversation(alice) -> Conversation:
    return Conversation.objects.create(owner=alice)


def session_cookie(user: User) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


class Tab(TabFrames):
    """A browser tab on a conversation: a WebSocket with the user's session cookie."""

    def __init__(self, communicator: WebsocketCommunicator) -> None:
        super().__init__()
        self.communicator = communicator

    async def receive(self) -> dict[str, Any]:
        frame = json.loads(await self.communicator.receive_from(timeout=FRAME_TIMEOUT))
        self.frames.append(frame)
        return frame

    async def send(self, frame: dict[str, Any] | str) -> None:
        await self.communicator.send_to(text_data=frame if isinstance(frame, str) else json.dumps(frame))

    async def close(self) -> None:
        await self.communicator.disconnect()


async def open_tab(
    conversation_id: int, user: User | None, *, origin: bytes | None = ORIGIN
) -> tuple[Tab, bool, int | None]:
    """Connect a tab; returns it, whether it was accepted, and the close code if refused."""
    headers = [(b"host", b"localhost")]
    if origin is not None:
        headers.append((b"origin", origin))
    if user is not None:
        cookie = await database_sync_to_async(session_cookie)(user)
        headers.append((b"cookie", f"sessionid={cookie}".encode()))
    communicator = WebsocketCommunicator(application, f"/ws/conversations/{conversation_id}/", headers=headers)
    connected, code = await communicator.connect(timeout=FRAME_TIMEOUT)
    return Tab(communicator), connected, code


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
