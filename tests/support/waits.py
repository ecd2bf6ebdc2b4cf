"""Waiting in tests for a condition, with a deadline, instead of sleeping a fixed time.

A fixed sleep before an assertion is either too short on a loaded machine (the test fails for no
fault of the product) or longer than needed everywhere else. `eventually` polls until the condition
holds and fails with a clear message at its deadline; `wait_until` is the same for synchronous code.

Proving that something did *not* happen cannot be waited for: `never` polls for a short window and
fails as soon as the thing happens. Give it the smallest window that the rule under test makes
meaningful, and say in a comment why that window.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")
Predicate = Callable[[], Any] | Callable[[], Awaitable[Any]]

DEFAULT_TIMEOUT = 10.0
DEFAULT_INTERVAL = 0.01


async def _check(predicate: Predicate) -> Any:
    value = predicate()
    if inspect.isawaitable(value):
        value = await value
    return value


def _describe(predicate: Predicate, message: str | None) -> str:
    return message or getattr(predicate, "__name__", repr(predicate))


async def eventually(
    predicate: Predicate,
    timeout: float = DEFAULT_TIMEOUT,  # noqa: ASYNC109 (the failure names what was awaited, unlike asyncio.timeout)
    interval: float = DEFAULT_INTERVAL,
    message: str | None = None,
) -> Any:
    """Poll `predicate` (a function, or a coroutine function) until it returns something truthy, and
    return that; AssertionError naming `message` (or the predicate) if it has not after `timeout` seconds.
    The predicate is always asked once more at the deadline, so a slow loop cannot make it miss."""
    deadline = time.monotonic() + timeout
    while True:
        value = await _check(predicate)
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"not true after {timeout:g} s: {_describe(predicate, message)} (last: {value!r})")
        await asyncio.sleep(interval)


async def never(
    predicate: Predicate,
    within: float,
    interval: float = DEFAULT_INTERVAL,
    message: str | None = None,
) -> None:
    """Fail as soon as `predicate` returns something truthy during the next `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        value = await _check(predicate)
        if value:
            raise AssertionError(f"happened within {within:g} s: {_describe(predicate, message)} ({value!r})")
        if time.monotonic() >= deadline:
            return
        await asyncio.sleep(interval)


def wait_until(
    predicate: Callable[[], T],
    timeout: float = DEFAULT_TIMEOUT,
    interval: float = DEFAULT_INTERVAL,
    message: str | None = None,
) -> T:
    """`eventually` for synchronous code: poll `predicate` until truthy, at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"not true after {timeout:g} s: {_describe(predicate, message)} (last: {value!r})")
        time.sleep(interval)
