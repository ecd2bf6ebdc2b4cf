"""Agent runs for tests: an arithmetic run on the offline model, its events, and the protocol's checks."""

from __future__ import annotations

from typing import Any

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


def model_at(server: Any, **overrides: Any) -> ModelConfig:
    """The product's model settings for the OpenAI-compatible `server` (tests.fake_openai): no retries,
    a 3 s request timeout."""
    return ModelConfig(api_key="test", base_url=server.base_url, max_retries=0, request_timeout=3, **overrides)


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
