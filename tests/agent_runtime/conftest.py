"""Fixtures for the runtime: leak detection (its runs and checks are in tests.support.runs)."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio


@pytest_asyncio.fixture
async def no_leaks() -> AsyncIterator[list[dict[str, Any]]]:
    """Fail if a test leaves a task pending or an exception unretrieved on the loop."""
    loop = asyncio.get_running_loop()
    problems: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: problems.append(context))
    before = asyncio.all_tasks()
    yield problems
    for _ in range(3):
        await asyncio.sleep(0)
    gc.collect()
    await asyncio.sleep(0)
    pending = [t for t in asyncio.all_tasks() - before if t is not asyncio.current_task() and not t.done()]
    loop.set_exception_handler(previous)
    assert pending == [], f"tasks left pending: {pending}"
    assert problems == [], f"loop reported: {problems}"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
