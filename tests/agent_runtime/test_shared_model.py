"""One chat model per config and process, shared by every run; tools converted once; the process warm-up.

The model is built once (`build_chat_model` is cached), so runs must not leak into each other:
each run's callbacks travel with its calls, and two runs streaming at once over the one model each
see their own answer only. Its requests skip the `openai` client's body transform and must still
carry exactly what LangChain built.
"""

from __future__ import annotations

import asyncio
import json
import socket

import pytest

from agent_runtime import events, warmup
from agent_runtime.assistants import ArithmeticAssistant
from agent_runtime.executor import AgentRun
from agent_runtime.history import HistoryTurn
from agent_runtime.llm import ModelConfig, build_chat_model, shared_model, tool_schemas
from agent_runtime.tools import TOOLS, add
from agent_runtime.warmup import warm_up_model
from tests.fake_openai import FakeOpenAI, StreamResponse, split_text, tool_calls_chunks
from tests.support.runs import arithmetic, assert_well_formed, collect


def config_for(server: FakeOpenAI, **overrides: object) -> ModelConfig:
    return ModelConfig(api_key="test", base_url=server.base_url, max_retries=0, request_timeout=5, **overrides)


def answer_step(answer: str, *, delay: float = 0.0) -> StreamResponse:
    arguments = json.dumps({"answer": answer, "tools_used": []})
    return StreamResponse(tool_calls_chunks([("call_final", "final_answer", split_text(arguments, 4))]), delay=delay)


def tokens(seen: list[events.Event]) -> str:
    return "".join(e["text"] for e in seen if e["type"] == events.TOKEN)


def test_the_same_config_gives_the_same_model_and_another_config_another():
    online = ModelConfig(api_key="test", base_url="http://127.0.0.1:9/v1")
    assert build_chat_model(online) is build_chat_model(ModelConfig(api_key="test", base_url="http://127.0.0.1:9/v1"))
    assert build_chat_model(online) is not build_chat_model(ModelConfig(api_key="test", base_url="http://x:9/v1"))
    assert build_chat_model(online) is not build_chat_model(ModelConfig(api_key="test", model="gpt-4o"))
    offline = ModelConfig(offline_tokens_per_second=0)
    assert build_chat_model(offline) is build_chat_model(ModelConfig(offline_tokens_per_second=0))
    assert build_chat_model(offline) is not build_chat_model(ModelConfig(offline_tokens_per_second=5))


@pytest.mark.asyncio
async def test_two_runs_at_once_over_the_shared_model_each_get_only_their_own_tokens(fake_openai, no_leaks):
    answers = {"The first answer, with its own words.", "A second, different reply entirely."}
    # Paced, so that the two streams interleave chunk by chunk.
    fake_openai.enqueue(*(answer_step(answer, delay=0.005) for answer in sorted(answers)))
    config = config_for(fake_openai)
    runs = [
        AgentRun(llm=build_chat_model(config), model_name=config.model, user_input=f"question {n}", **arithmetic())
        for n in range(2)
    ]
    assert runs[0]._llm is runs[1]._llm

    seen = await asyncio.gather(*(collect(run) for run in runs))

    finals = set()
    for run_events in seen:
        assert_well_formed(run_events)
        final = next(e for e in run_events if e["type"] == events.FINAL)
        assert tokens(run_events) == final["content"]
        finals.add(final["content"])
    assert finals == answers
    assert len(fake_openai.requests) == 2
    assert shared_model(build_chat_model(config)).callbacks is None  # nothing of a run stays on it


@pytest.mark.asyncio
async def test_the_request_carries_what_langchain_built_without_the_clients_transform(fake_openai, no_leaks):
    fake_openai.enqueue(answer_step("Twenty."))
    config = config_for(fake_openai)
    run = AgentRun(
        llm=build_chat_model(config),
        model_name=config.model,
        user_input="What is 10 + 10?",
        history=[HistoryTurn("user", "Earlier?"), HistoryTurn("assistant", "Earlier answer.")],
        tools=TOOLS,
        system_prompt=ArithmeticAssistant.system_prompt(),
    )
    seen = await collect(run)

    assert tokens(seen) == "Twenty."
    request = fake_openai.requests[0]
    assert request["model"] == config.model
    assert request["stream"] is True
    assert request["stream_options"] == {"include_usage": True}
    assert request["temperature"] == 0
    assert request["tool_choice"] == "required"
    assert [m["role"] for m in request["messages"]] == ["system", "user", "assistant", "user"]
    assert request["messages"][0] == {"role": "system", "content": ArithmeticAssistant.system_prompt()}
    assert request["messages"][1:3] == [
        {"role": "user", "content": "Earlier?"},
        {"role": "assistant", "content": "Earlier answer."},
    ]
    assert request["messages"][-1]["content"] == "What is 10 + 10?"
    assert [t["function"]["name"] for t in request["tools"]] == [t.name for t in TOOLS]
    assert request["tools"][0]["function"]["parameters"]["required"] == ["x", "y"]


def test_tool_schemas_are_converted_once_and_handed_out_as_copies():
    first, second = tool_schemas([add]), tool_schemas([add])
    assert first == second and first[0] is not second[0]
    first[0]["function"]["name"] = "changed"
    assert tool_schemas([add])[0]["function"]["name"] == "add"


def test_method_tools_of_two_instances_share_one_argument_schema():
    from agent_runtime.assistants import Assistant, tool

    class Notes(Assistant):
        id = "notes"
        name = "Notes"

        @tool
        def note(self, text: str) -> str:
            """Keep a note."""
            return text

    one, other = Notes(user="a").local_tools(), Notes(user="b").local_tools()
    assert one[0].args_schema is other[0].args_schema
    assert one[0] is not other[0]  # each instance's tool calls its own method (its own user)
    assert [t.name for t in one] == ["note", "final_answer"]


def test_warm_up_rehearses_a_run_without_contacting_anything():
    with socket.socket() as listener:  # a port where nothing answers: any request would fail
        listener.bind(("127.0.0.1", 0))
        config = ModelConfig(api_key="test", base_url=f"http://127.0.0.1:{listener.getsockname()[1]}/v1")
        assistant = ArithmeticAssistant(user=None)
        seconds = warm_up_model(config, assistant.local_tools(), ArithmeticAssistant.system_prompt())
    assert 0 < seconds < 30
    assert shared_model(build_chat_model(config)) is not None  # built, and cached for the first run


def test_warm_up_of_the_offline_model():
    assistant = ArithmeticAssistant(user=None)
    assert warm_up_model(ModelConfig(offline_tokens_per_second=0), assistant.local_tools(), "prompt") > 0


def test_the_rehearsal_of_an_openai_model_completes_over_its_own_loopback_server():
    assistant = ArithmeticAssistant(user=None)
    config = ModelConfig(api_key="test", base_url="http://127.0.0.1:9/v1")
    status = asyncio.run(warmup._rehearse(config, assistant.local_tools(), ArithmeticAssistant.system_prompt()))
    assert status == "completed"
