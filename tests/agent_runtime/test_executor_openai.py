"""The streaming executor over langchain-openai's real streaming path, against the local fake server.

Each test scripts what the server answers to every LLM step of the run (step 1: tool calls,
step 2: the `final_answer` call, ...) and checks the protocol events the run emits.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from agent_runtime import events
from agent_runtime.events import Event
from agent_runtime.executor import AgentRun
from agent_runtime.llm import ModelConfig, build_chat_model
from tests.agent_runtime.conftest import assert_well_formed, collect, types_of
from tests.fake_openai import (
    FakeOpenAI,
    StreamResponse,
    split_text,
    tool_calls_chunks,
)

pytestmark = pytest.mark.asyncio

QUESTION = "What is 10 + 10?"
TOOL_NAMES = "add, exponentiate, final_answer, multiply, subtract"


# --- scripting the server ----------------------------------------------------------------------


def tool_step(*calls: tuple[str, str, list[str]], usage: tuple[int, int] = (11, 7), **options: Any) -> StreamResponse:
    """An LLM step that calls tools `(call_id, name, argument_fragments)`, in index order."""
    return StreamResponse(tool_calls_chunks(list(calls), usage=usage), **options)


def answer_args(answer: str, tools_used: list[str] = ()) -> str:  # type: ignore[assignment]
    """The JSON arguments of a `final_answer` call."""
    return json.dumps({"answer": answer, "tools_used": list(tools_used)}, ensure_ascii=False)


def answer_step(fragments: list[str], *, call_id: str = "call_final", **options: Any) -> StreamResponse:
    """An LLM step that calls `final_answer` with its arguments typed as `fragments`."""
    return tool_step((call_id, "final_answer", fragments), **options)


def answer_text_step(answer: str, *, size: int = 4, **options: Any) -> StreamResponse:
    """A `final_answer` call whose JSON arguments stream `size` characters at a time."""
    return answer_step(split_text(answer_args(answer), size), **options)


def run_over(server: FakeOpenAI, question: str = QUESTION, **kwargs: Any) -> AgentRun:
    """An AgentRun on a real ChatOpenAI that talks to the fake server."""
    config = ModelConfig(api_key="test", base_url=server.base_url, max_retries=0, request_timeout=5)
    return AgentRun(llm=build_chat_model(config), model_name=config.model, user_input=question, **kwargs)


# --- reading the events ------------------------------------------------------------------------


def of_type(seen: list[Event], kind: str) -> list[Event]:
    return [e for e in seen if e["type"] == kind]


def tokens(seen: list[Event]) -> str:
    return "".join(e["text"] for e in of_type(seen, events.TOKEN))


def args_of(seen: list[Event], call_id: str) -> str:
    return "".join(e["delta"] for e in of_type(seen, events.TOOL_ARGS) if e["call_id"] == call_id)


def the_error(seen: list[Event]) -> Event:
    """The run's one `error` event, which comes right before `done` `error`."""
    errors = of_type(seen, events.ERROR)
    assert len(errors) == 1, errors
    assert types_of(seen)[-2:] == ["error", "done"]
    assert seen[-1]["status"] == "error"
    return errors[0]


def messages_of(server: FakeOpenAI, request: int) -> list[dict[str, Any]]:
    return server.requests[request]["messages"]


def tool_messages(server: FakeOpenAI, request: int) -> dict[str, str]:
    """`tool_call_id -> content` of the tool messages the model was sent in `request`."""
    return {m["tool_call_id"]: m["content"] for m in messages_of(server, request) if m["role"] == "tool"}


async def disconnected(server: FakeOpenAI, timeout: float = 2) -> bool:
    return await asyncio.to_thread(server.wait_for_disconnect, timeout)


# --- a normal run ------------------------------------------------------------------------------


async def test_one_tool_call_then_final_answer(fake_openai, no_leaks):
    fake_openai.enqueue(
        tool_step(("call_add", "add", ['{"x', '": 1', '0, "y"', ": 10}"]), usage=(30, 5)),
        answer_text_step("10 + 10 = 20", tools_used=None)
        if False
        else answer_step(split_text(answer_args("10 + 10 = 20", ["add"]), 5), usage=(50, 9)),
    )
    run = run_over(fake_openai)
    seen = await collect(run)

    assert_well_formed(seen)
    kinds = types_of(seen)
    result_at = kinds.index("tool_result")
    assert kinds[:2] == ["run_started", "tool_start"]
    assert set(kinds[2 : result_at - 1]) == {"tool_args"}
    assert kinds[result_at - 1] == "step_end"
    assert set(kinds[result_at + 1 : -2]) == {"token"}
    assert kinds[-2:] == ["final", "done"]
    assert seen[-1]["status"] == "completed"
    assert (seen[1]["call_id"], seen[1]["name"]) == ("call_add", "add")
    assert args_of(seen, "call_add") == '{"x": 10, "y": 10}'
    assert {k: seen[result_at][k] for k in ("call_id", "name", "output")} == {
        "call_id": "call_add",
        "name": "add",
        "output": 20,
    }
    final = seen[-2]
    assert final["content"] == "10 + 10 = 20"
    assert final["tools_used"] == ["add"]
    assert final["usage"] == {"input_tokens": 80, "output_tokens": 14, "total_tokens": 94}
    assert run.report.status == "completed"
    assert run.report.content == "10 + 10 = 20"
    assert run.report.usage == final["usage"]

    assert len(fake_openai.requests) == 2
    assistant = next(m for m in messages_of(fake_openai, 1) if m["role"] == "assistant")
    [call] = assistant["tool_calls"]
    assert call["id"] == "call_add"
    assert call["function"]["name"] == "add"
    assert json.loads(call["function"]["arguments"]) == {"x": 10, "y": 10}
    assert tool_messages(fake_openai, 1) == {"call_add": "20"}
