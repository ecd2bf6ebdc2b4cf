"""Fixtures for the runtime: run collection, protocol checks and leak detection."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from agent_runtime import events
from agent_runtime.assistants import ArithmeticAssistant
from agent_runtime.events import Event, validate_event
from agent_runtime.executor import AgentRun
from agent_runtime.llm import ModelConfig, build_chat_model


def arithmetic(**kwargs: Any) -> dict[str, Any]:
    """`kwargs` for an AgentRun, with the arithmetic assistant's tools and instructions unless given."""
    return {
        "tools": ArithmeticAssistant(user=None).local_tools(),
        "system_prompt": ArithmeticAssistant.system_prompt(),
        **kwargs,
    }


def offline_run(question: str, **kwargs: Any) -> AgentRun:
    """An AgentRun of the arithmetic assistant on the offline demo model at full speed."""
    llm = build_chat_model(ModelConfig(offline_tokens_per_second=kwargs.pop("pace", 0)))
    return AgentRun(llm=llm, model_name="offline-demo", user_input=question, **arithmetic(**kwargs))


async def collect(run: AgentRun) -> list[Event]:
    """Every event of a run, in order."""
    return [event async for event in run]


def assert_well_formed(seen: list[Event]) -> None:
    """The protocol's promises: schemas, contiguous seq, one final `done`, tokens equal to `final`."""
    for event in seen:
        validate_event(event)
    assert [e["seq"] for e in seen] == list(range(1, len(seen) + 1))
    assert seen[0]["type"] == events.RUN_STARTED
    assert [e["type"] for e in seen].count(events.DONE) == 1
    assert seen[-1]["type"] == events.DONE
    assert len({e["run_id"] for e in seen}) == 1
    finals = [e for e in seen if e["type"] == events.FINAL]
    if seen[-1]["status"] == "completed":
        assert len(finals) == 1
        assert "".join(e["text"] for e in seen if e["type"] == events.TOKEN) == finals[0]["content"]
    else:
        assert finals == []


def types_of(seen: list[Event]) -> list[str]:
    """The event types, in order."""
    return [e["type"] for e in seen]


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
