"""Fixtures shared by the whole suite: the local OpenAI-compatible test server, a fresh process state."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from conversations.process import process_state

pytest_plugins = ["tests.fake_openai"]


@pytest.fixture(autouse=True)
def fresh_process_state() -> Iterator[None]:
    """Each test starts from a process that holds nothing: no runs, waits, tasks or logs of another test."""
    yield
    process_state().reset()
