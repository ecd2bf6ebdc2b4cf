"""The streaming executor over langchain-openai's real streaming path, against the local fake server.

Each test scripts what the server answers to every LLM step of the run (step 1: tool calls,
step 2: the `final_answer` call, ...) and checks the protocol events the run emits.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

import pytest

from agent_runtime import events
from agent_runtime.errors import MODEL_FAILED, MODEL_RATE_LIMITED
from agent_runtime.events import Event
from agent_runtime.executor import (
    EMPTY_RESPONSE,
    MAX_ITERATIONS_REACHED,
    RUN_TIMED_OUT,
    UNKNOWN_TOOL,
    AgentRun,
)
from agent_runtime.llm import ModelConfig, build_chat_model
from tests.fake_openai import (
    ErrorResponse,
    FakeOpenAI,
    StreamResponse,
    content_chunks,
    split_text,
    tool_calls_chunks,
)
from tests.support.runs import arithmetic, assert_well_formed, collect, types_of

pytestmark = pytest.mark.asyncio

QUESTION = "What is 10 + 10?"


# --- scripting the server ----------------------------------------------------------------------


def tool_step(*calls: tuple[str, str, list[str]], usage: tuple[int, int] = (11, 7), **options: Any) -> StreamResponse:
    """An LLM step that calls tools `(call_id, name, argument_fragments)`, in index order."""
    return StreamResponse(tool_calls_chunks(list(calls), usage=usage), **options)


def answer_args(answer: str, tools_used: tuple[str, ...] = ()) -> str:
    """The JSON arguments of a `final_answer` call."""
    return json.dumps({"answer": answer, "tools_used": list(tools_used)}, ensure_ascii=False)


def typed_answer_step(fragments: list[str], *, call_id: str = "call_final", **options: Any) -> StreamResponse:
    """An LLM step that calls `final_answer`, its JSON arguments typed as `fragments`."""
    return tool_step((call_id, "final_answer", fragments), **options)


def answer_step(answer: str, *, tools_used: tuple[str, ...] = (), size: int = 5, **options: Any) -> StreamResponse:
    """An LLM step that calls `final_answer`, its JSON arguments streamed `size` characters at a time."""
    return typed_answer_step(split_text(answer_args(answer, tools_used), size), **options)


def run_over(server: FakeOpenAI, question: str = QUESTION, **kwargs: Any) -> AgentRun:
    """An AgentRun of the arithmetic assistant on a real ChatOpenAI that talks to the fake server."""
    config = ModelConfig(api_key="test", base_url=server.base_url, max_retries=0, request_timeout=5)
    return AgentRun(llm=build_chat_model(config), model_name=config.model, user_input=question, **arithmetic(**kwargs))


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


async def disconnected(server: FakeOpenAI) -> bool:
    """Whether the server saw the client leave mid-response (within 2 s), without blocking the loop."""
    return await asyncio.to_thread(server.wait_for_disconnect, 2)


# --- a normal run ------------------------------------------------------------------------------


async def test_one_tool_call_then_final_answer(fake_openai, no_leaks):
    fake_openai.enqueue(
        tool_step(("call_add", "add", ['{"x', '": 1', '0, "y"', ": 10}"]), usage=(30, 5)),
        answer_step("10 + 10 = 20", tools_used=("add",), usage=(50, 9)),
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


async def test_two_parallel_tool_calls_in_one_response(fake_openai, no_leaks):
    fake_openai.enqueue(
        tool_step(
            ("call_add", "add", ['{"x": 3,', ' "y": 4}']),
            ("call_mul", "multiply", ['{"x": 6', ', "y": 7}']),
        ),
        answer_step("7 and 42", tools_used=("add", "multiply")),
    )
    run = run_over(fake_openai, "3 + 4 and 6 * 7?")
    seen = await collect(run)

    assert_well_formed(seen)
    starts = {e["call_id"]: e["name"] for e in of_type(seen, events.TOOL_START)}
    assert starts == {"call_add": "add", "call_mul": "multiply"}
    assert args_of(seen, "call_add") == '{"x": 3, "y": 4}'
    assert args_of(seen, "call_mul") == '{"x": 6, "y": 7}'
    results = {e["call_id"]: (e["name"], e["output"]) for e in of_type(seen, events.TOOL_RESULT)}
    assert results == {"call_add": ("add", 7), "call_mul": ("multiply", 42)}
    kinds = types_of(seen)
    assert kinds.count("step_end") == 1
    assert kinds.index("step_end") < kinds.index("tool_result")
    assert seen[-2]["content"] == "7 and 42"
    assert seen[-2]["tools_used"] == ["add", "multiply"]

    assistant = next(m for m in messages_of(fake_openai, 1) if m["role"] == "assistant")
    assert [c["id"] for c in assistant["tool_calls"]] == ["call_add", "call_mul"]
    assert tool_messages(fake_openai, 1) == {"call_add": "7", "call_mul": "42"}


# --- the final answer streams as clean text ----------------------------------------------------


ESCAPED_ANSWER = 'Café "ok" 😀 done'
ESCAPED_FRAGMENTS = [
    '{"answer": "Ca',  # mid-word
    "f\\u00",  # inside the \u00e9 escape
    "e9 \\",  # between the backslash and the quote of \"
    '"ok\\',
    '" \\ud83d',  # between the two escapes of a surrogate pair
    "\\ude00 do",
    'ne", "tools_',
    'used": []}',
]
# What each fragment decodes to: an escape, or a surrogate pair, is shown once it is complete.
ESCAPED_PIECES = ["Ca", "f", "é ", '"ok', '" ', "😀 do", "ne"]


async def test_answer_split_mid_word_mid_escape_and_mid_surrogate_pair(fake_openai, no_leaks):
    assert json.loads("".join(ESCAPED_FRAGMENTS))["answer"] == ESCAPED_ANSWER
    fake_openai.enqueue(typed_answer_step(ESCAPED_FRAGMENTS, delay=0.01))
    seen = await collect(run_over(fake_openai, "Say it"))

    assert_well_formed(seen)
    assert_clean_tokens(seen, ESCAPED_ANSWER)
    # Tokens waiting in the queue may be merged, but none ends inside a fragment's piece.
    pieces = [e["text"] for e in of_type(seen, events.TOKEN)]
    assert ends_of(pieces) <= ends_of(ESCAPED_PIECES)


async def test_raw_utf8_answer_written_byte_by_byte(fake_openai, no_leaks):
    answer = "😀 naïve 👍🏽 — 完了"
    fake_openai.enqueue(answer_step(answer, size=12, write_size=1, usage=None))
    seen = await collect(run_over(fake_openai, "Say it"))

    assert_well_formed(seen)
    assert_clean_tokens(seen, answer)


def ends_of(pieces: list[str]) -> set[int]:
    """Where each piece ends in the text the pieces join to."""
    return set(itertools.accumulate(len(piece) for piece in pieces))


def assert_clean_tokens(seen: list[Event], answer: str) -> None:
    """Tokens are decoded text (no JSON syntax, no half characters) that join to exactly `answer`."""
    pieces = [e["text"] for e in of_type(seen, events.TOKEN)]
    assert pieces
    for piece in pieces:
        assert "\\" not in piece
        piece.encode("utf-8")  # raises on a lone surrogate
        assert "\ufffd" not in piece
    assert not pieces[0].startswith('"')
    assert not pieces[-1].endswith('"')
    assert "".join(pieces) == seen[-2]["content"] == answer


async def test_plain_content_answer_without_tool_call(fake_openai, no_leaks):
    answer = "Hello! I can only do arithmetic."
    fake_openai.enqueue(StreamResponse(content_chunks(split_text(answer, 4))))
    run = run_over(fake_openai, "Hi")
    seen = await collect(run)

    assert_well_formed(seen)
    assert types_of(seen) == ["run_started"] + ["token"] * (len(seen) - 3) + ["final", "done"]
    assert seen[-2]["content"] == answer
    assert seen[-2]["tools_used"] == []
    assert seen[-2]["usage"] == {"input_tokens": 11, "output_tokens": 7, "total_tokens": 18}
    assert run.report.content == answer


# --- model failures ----------------------------------------------------------------------------


async def test_http_500_is_a_model_error(fake_openai, no_leaks):
    fake_openai.enqueue(ErrorResponse(status=500, message="boom"))
    run = run_over(fake_openai)
    seen = await collect(run)

    assert_well_formed(seen)
    assert types_of(seen) == ["run_started", "error", "done"]
    error = the_error(seen)
    assert error["code"] == events.ERROR_MODEL_FAILED
    assert "500" in error["message"]
    assert run.report.status == "error"
    assert run.report.error_code == events.ERROR_MODEL_FAILED


async def test_http_429_is_rate_limited_with_retry_after(fake_openai, no_leaks):
    rate_limited = ErrorResponse(status=429, message="slow down", type="rate_limit_error", headers={"Retry-After": "7"})
    fake_openai.enqueue(rate_limited)
    run = run_over(fake_openai)
    seen = await collect(run)

    assert_well_formed(seen)
    assert types_of(seen) == ["run_started", "error", "done"]
    error = the_error(seen)
    assert error["code"] == events.ERROR_MODEL_RATE_LIMITED
    assert error["message"].startswith(MODEL_RATE_LIMITED)
    assert "retry after 7 s" in error["message"]
    assert run.report.error_code == events.ERROR_MODEL_RATE_LIMITED


LONG_ANSWER = "One, two, three, four, five, six, seven, eight, nine, ten, eleven, twelve."


async def test_stream_cut_midway_is_model_unavailable_and_keeps_the_partial_answer(fake_openai, no_leaks):
    fake_openai.enqueue(answer_step(LONG_ANSWER, size=4, cut_after=8))
    run = run_over(fake_openai)
    seen = await collect(run)

    assert_well_formed(seen)
    error = the_error(seen)
    assert error["code"] == events.ERROR_MODEL_UNAVAILABLE
    partial = tokens(seen)
    assert partial
    assert LONG_ANSWER.startswith(partial)
    assert partial != LONG_ANSWER
    assert run.report.status == "error"
    assert run.report.content == partial


async def test_server_stalling_past_the_run_deadline_times_out_and_is_disconnected(fake_openai, no_leaks):
    fake_openai.enqueue(answer_step(LONG_ANSWER, size=4, stall_after=6, stall_seconds=10))
    run = run_over(fake_openai, timeout=1)
    seen = await collect(run)

    assert_well_formed(seen)
    error = the_error(seen)
    assert error["code"] == events.ERROR_TIMEOUT
    assert error["message"] == RUN_TIMED_OUT.format(seconds=1)
    assert await disconnected(fake_openai)
    assert fake_openai.completed_streams == 0
    assert run.report.status == "error"
    assert run.report.content == tokens(seen) == "One,"  # the six events sent end with the fragment `One,`


# --- cancellation closes the HTTP request ------------------------------------------------------


def slow_answer() -> StreamResponse:
    """A final answer typed one character every 50 ms, for about four seconds."""
    return typed_answer_step(['{"answer": "', *LONG_ANSWER, '", "tools_used": []}'], delay=0.05)


async def test_cancel_mid_stream_closes_the_request(fake_openai, no_leaks):
    fake_openai.enqueue(slow_answer())
    run = run_over(fake_openai)
    seen: list[Event] = []

    async def consume() -> None:
        async for event in run:
            seen.append(event)
            if len(of_type(seen, events.TOKEN)) == 3:
                run.cancel()

    await asyncio.wait_for(consume(), 5)

    assert_well_formed(seen)
    assert seen[-1]["status"] == "cancelled"
    assert events.ERROR not in types_of(seen)
    assert await disconnected(fake_openai)
    assert fake_openai.completed_streams == 0
    assert run.report.status == "cancelled"
    assert run.report.content == tokens(seen)
    assert run.report.content
    assert LONG_ANSWER.startswith(run.report.content)


async def test_cancelling_the_iterating_task_closes_the_request(fake_openai, no_leaks):
    fake_openai.enqueue(slow_answer())
    run = run_over(fake_openai)
    seen: list[Event] = []
    streaming = asyncio.Event()

    async def consume() -> None:
        async for event in run:
            seen.append(event)
            if len(of_type(seen, events.TOKEN)) == 3:
                streaming.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(streaming.wait(), 5)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)

    assert_well_formed(seen)
    assert seen[-1]["status"] == "cancelled"
    assert await disconnected(fake_openai)
    assert run.report.status == "cancelled"
    assert run.report.content == tokens(seen)
    assert run.report.content


# --- a misbehaving model -----------------------------------------------------------------------


def tool_error_then_answer(server: FakeOpenAI, call: tuple[str, str, list[str]]) -> None:
    """Script a step with one (faulty) tool call, then a final answer."""
    server.enqueue(tool_step(call), answer_step("Sorry, I could not compute that."))


async def run_to_a_final_answer_after_a_tool_error(server: FakeOpenAI, call_id: str) -> tuple[list[Event], str]:
    """Run the script of `tool_error_then_answer`; return the events and the tool_result's error."""
    run = run_over(server)
    seen = await collect(run)

    assert_well_formed(seen)
    assert seen[-1]["status"] == "completed"
    assert seen[-2]["content"] == "Sorry, I could not compute that."
    assert seen[-2]["tools_used"] == []
    [result] = of_type(seen, events.TOOL_RESULT)
    assert result["call_id"] == call_id
    assert "output" not in result
    assert run.report.tool_steps[0].error == result["error"]
    assistant = next(m for m in messages_of(server, 1) if m["role"] == "assistant")
    assert [c["id"] for c in assistant["tool_calls"]] == [call_id]
    assert tool_messages(server, 1) == {call_id: f"Error: {result['error']}"}
    return seen, result["error"]


async def test_invalid_json_arguments_are_an_error_fed_back_to_the_model(fake_openai, no_leaks):
    tool_error_then_answer(fake_openai, ("call_bad", "add", ['{"x": 1, ', '"y": ']))
    _, error = await run_to_a_final_answer_after_a_tool_error(fake_openai, "call_bad")

    assert error.startswith("the arguments are not valid JSON: ")


async def test_unknown_tool_is_an_error_listing_the_tools(fake_openai, no_leaks):
    tool_error_then_answer(fake_openai, ("call_div", "divide", ['{"x": 1, "y": 2}']))
    seen, error = await run_to_a_final_answer_after_a_tool_error(fake_openai, "call_div")

    assert of_type(seen, events.TOOL_START)[0]["name"] == "divide"
    assert error == UNKNOWN_TOOL.format(name="divide", names="add, exponentiate, final_answer, multiply, subtract")


async def test_text_for_a_number_is_an_error(fake_openai, no_leaks):
    tool_error_then_answer(fake_openai, ("call_add", "add", ['{"x": "abc", "y": 1}']))
    _, error = await run_to_a_final_answer_after_a_tool_error(fake_openai, "call_add")

    assert error == "invalid arguments: x: must be a number, not 'abc'"


async def test_two_final_answers_in_one_response_use_the_first(fake_openai, no_leaks):
    fake_openai.enqueue(
        tool_step(
            ("call_a", "final_answer", split_text(answer_args("The first answer."), 6)),
            ("call_b", "final_answer", split_text(answer_args("The second answer."), 6)),
        )
    )
    run = run_over(fake_openai)
    seen = await collect(run)

    assert_well_formed(seen)
    assert len(of_type(seen, events.FINAL)) == 1
    assert tokens(seen) == seen[-2]["content"] == "The first answer."
    assert run.report.content == "The first answer."
    assert len(fake_openai.requests) == 1


@pytest.mark.parametrize(
    ("response", "message"),
    [
        (StreamResponse(content_chunks([])), EMPTY_RESPONSE),  # a role, a stop and usage, no text
        (StreamResponse([]), MODEL_FAILED),  # nothing but `data: [DONE]`: LangChain raises
    ],
    ids=["no-content", "no-chunks"],
)
async def test_empty_response_is_an_error_not_a_hang(fake_openai, no_leaks, response, message):
    fake_openai.enqueue(response)
    run = run_over(fake_openai)
    seen = await asyncio.wait_for(collect(run), 5)

    assert_well_formed(seen)
    assert types_of(seen) == ["run_started", "error", "done"]
    error = the_error(seen)
    assert error["code"] == events.ERROR_MODEL_FAILED
    assert error["message"].startswith(message)
    assert len(fake_openai.requests) == 1


async def test_the_same_tool_forever_stops_at_max_iterations(fake_openai, no_leaks):
    for _ in range(3):
        fake_openai.enqueue(tool_step(("call_add", "add", ['{"x": 1, "y": 1}'])))
    run = run_over(fake_openai, max_iterations=3)
    seen = await asyncio.wait_for(collect(run), 5)

    assert_well_formed(seen)
    error = the_error(seen)
    assert error["code"] == events.ERROR_MAX_ITERATIONS
    assert error["message"] == MAX_ITERATIONS_REACHED.format(n=3)
    results = of_type(seen, events.TOOL_RESULT)
    assert [r["output"] for r in results] == [2, 2, 2]
    assert len({r["call_id"] for r in results}) == 3  # the reused id is made unique per step
    assert types_of(seen).count("step_end") == 3
    assert len(fake_openai.requests) == 3
    assert run.report.error_code == events.ERROR_MAX_ITERATIONS
