"""Tests of the fake OpenAI server itself, through the real openai and httpx clients."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import httpx2
import openai
import pytest
from langchain_core.messages import AIMessageChunk
from langchain_openai import ChatOpenAI
from openai.types.chat import ChatCompletionChunk

from tests.fake_openai import (
    NO_SCRIPTED_RESPONSE,
    STREAM_REQUIRED,
    ErrorResponse,
    FakeOpenAI,
    StreamResponse,
    content_chunks,
    fake_openai,
    split_text,
    tool_calls_chunks,
)

server = fake_openai  # the shipped fixture, requested under a name that does not shadow the import

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
TRICKY_TEXT = 'Café "au lait" \\"quoted\\" 👍🏽 naïve — done'


def _client(server: FakeOpenAI, **options: Any) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=server.base_url, api_key="test", max_retries=0, **options)


async def _stream_chunks(server: FakeOpenAI, **options: Any) -> AsyncIterator[ChatCompletionChunk]:
    async with _client(server, **options) as client:
        stream = await client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "Weather in Paris?"}],
            tools=[WEATHER_TOOL],
            stream=True,
            stream_options={"include_usage": True},
        )
        async with stream:
            async for chunk in stream:
                yield chunk


async def _collect(server: FakeOpenAI, **options: Any) -> list[ChatCompletionChunk]:
    return [chunk async for chunk in _stream_chunks(server, **options)]


def _tool_deltas(chunks: list[ChatCompletionChunk]) -> list[Any]:
    return [call for c in chunks if c.choices for call in c.choices[0].delta.tool_calls or []]


def _arguments_by_index(chunks: list[ChatCompletionChunk]) -> dict[int, str]:
    arguments: dict[int, str] = {}
    for delta in _tool_deltas(chunks):
        fragment = delta.function.arguments if delta.function else ""
        arguments[delta.index] = arguments.get(delta.index, "") + (fragment or "")
    return arguments


@pytest.mark.asyncio
async def test_tool_call_stream_reassembles_arguments(server: FakeOpenAI) -> None:
    arguments = '{"city": "Paris", "note": "é \\" 👍🏽"}'
    calls = [("call_1", "get_weather", split_text(arguments, 4))]
    server.enqueue(StreamResponse(tool_calls_chunks(calls, usage=(20, 5))))

    chunks = await _collect(server)

    deltas = _tool_deltas(chunks)
    assert (deltas[0].id, deltas[0].type, deltas[0].function.name) == ("call_1", "function", "get_weather")
    assert all(d.id is None and d.function.name is None for d in deltas[1:])
    assert _arguments_by_index(chunks) == {0: arguments}
    assert chunks[-2].choices[0].finish_reason == "tool_calls"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == 25
    assert server.completed_streams == 1


@pytest.mark.asyncio
async def test_two_parallel_tool_calls(server: FakeOpenAI) -> None:
    calls = [
        ("call_a", "get_weather", ['{"city":', ' "Paris"}']),
        ("call_b", "get_weather", ['{"city":', ' "Oslo"}']),
    ]
    server.enqueue(StreamResponse(tool_calls_chunks(calls)))

    chunks = await _collect(server)

    heads = [(d.index, d.id, d.function.name) for d in _tool_deltas(chunks) if d.id or d.function.name]
    assert heads == [(0, "call_a", "get_weather"), (1, "call_b", "get_weather")]
    assert _arguments_by_index(chunks) == {0: '{"city": "Paris"}', 1: '{"city": "Oslo"}'}


@pytest.mark.asyncio
async def test_content_written_byte_by_byte_is_reassembled(server: FakeOpenAI) -> None:
    chunks = content_chunks(split_text(TRICKY_TEXT, 3))
    server.enqueue(StreamResponse(chunks, write_size=1))

    received = await _collect(server)

    text = "".join(c.choices[0].delta.content or "" for c in received if c.choices)
    assert text == TRICKY_TEXT
    assert received[-2].choices[0].finish_reason == "stop"


@pytest.mark.asyncio
async def test_raw_stream_is_chunked_sse_split_inside_utf8(server: FakeOpenAI) -> None:
    server.enqueue(StreamResponse(content_chunks(["👍🏽"]), write_size=1))
    body = {"model": "gpt-4o-mini", "messages": [], "stream": True}

    async with httpx.AsyncClient() as client:
        url = f"{server.base_url}/chat/completions"
        async with client.stream("POST", url, json=body) as response:
            pieces = [piece async for piece in response.aiter_raw()]

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["transfer-encoding"] == "chunked"
    assert any(len(p) == 1 and p[0] >= 0x80 for p in pieces)
    events = b"".join(pieces).decode().split("\n\n")
    assert events[-2:] == ["data: [DONE]", ""]
    payloads = [json.loads(e.removeprefix("data: ")) for e in events[:-2]]
    assert {p["object"] for p in payloads} == {"chat.completion.chunk"}
    assert all("usage" not in p for p in payloads)


@pytest.mark.asyncio
async def test_http_500_raises_internal_server_error(server: FakeOpenAI) -> None:
    server.enqueue(ErrorResponse(500, "boom"))

    with pytest.raises(openai.InternalServerError) as caught:
        await _collect(server)

    assert caught.value.status_code == 500
    assert caught.value.body == {"message": "boom", "type": "server_error", "param": None, "code": None}


@pytest.mark.asyncio
async def test_http_429_raises_rate_limit_error(server: FakeOpenAI) -> None:
    error = ErrorResponse(429, "Rate limit reached", "requests", "rate_limit_exceeded", {"Retry-After": "7"})
    server.enqueue(error)

    with pytest.raises(openai.RateLimitError) as caught:
        await _collect(server)

    assert caught.value.response.headers["retry-after"] == "7"
    assert caught.value.code == "rate_limit_exceeded"


@pytest.mark.asyncio
async def test_cut_stream_raises_connection_error(server: FakeOpenAI) -> None:
    calls = [("call_1", "get_weather", split_text('{"city": "Paris"}', 2))]
    server.enqueue(StreamResponse(tool_calls_chunks(calls), cut_after=3))
    received: list[ChatCompletionChunk] = []

    with pytest.raises(openai.APIConnectionError) as caught:
        async for chunk in _stream_chunks(server):
            received.append(chunk)

    assert len(received) == 3
    assert isinstance(caught.value.__cause__, httpx2.RemoteProtocolError)
    assert server.completed_streams == 0
    assert server.disconnects == 0


@pytest.mark.asyncio
async def test_cut_stream_is_incomplete_for_raw_httpx(server: FakeOpenAI) -> None:
    server.enqueue(StreamResponse(content_chunks(["a", "b"]), cut_after=4))
    body = {"model": "gpt-4o-mini", "messages": [], "stream": True}

    async with httpx.AsyncClient() as client:
        url = f"{server.base_url}/chat/completions"
        with pytest.raises(httpx.RemoteProtocolError, match="incomplete"):
            await client.post(url, json=body)


@pytest.mark.asyncio
async def test_cancelled_stall_is_seen_as_disconnect(server: FakeOpenAI) -> None:
    server.enqueue(StreamResponse(content_chunks(["a", "b"]), stall_after=2))
    received: list[ChatCompletionChunk] = []

    async def consume() -> None:
        async for chunk in _stream_chunks(server):
            received.append(chunk)

    started = time.monotonic()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(consume(), timeout=0.5)

    assert await asyncio.to_thread(server.wait_for_disconnect, 2)
    assert time.monotonic() - started < 1.5
    assert len(received) == 2
    assert server.disconnects == 1
    assert server.completed_streams == 0


@pytest.mark.asyncio
async def test_slow_server_times_out_and_sees_disconnect(server: FakeOpenAI) -> None:
    server.enqueue(StreamResponse(content_chunks(["late"]), delay_before=5))

    with pytest.raises(openai.APITimeoutError):
        await _collect(server, timeout=0.3)

    assert await asyncio.to_thread(server.wait_for_disconnect, 2)


@pytest.mark.asyncio
async def test_delay_spaces_out_chunks(server: FakeOpenAI) -> None:
    server.enqueue(StreamResponse(content_chunks(["a", "b", "c"]), delay=0.05))
    arrivals: list[float] = []

    async for _chunk in _stream_chunks(server):
        arrivals.append(time.monotonic())

    assert len(arrivals) == 6
    # From the server's own stamp of its first event: the client's first arrival can come late on a
    # loaded machine and bunch up with the next ones, but the last cannot come before it was written.
    first_written = server.timings[-1].first_event
    assert first_written is not None
    assert arrivals[-1] - first_written >= 0.24


@pytest.mark.asyncio
async def test_empty_queue_answers_500(server: FakeOpenAI) -> None:
    with pytest.raises(openai.InternalServerError, match=NO_SCRIPTED_RESPONSE):
        await _collect(server)

    assert len(server.requests) == 1


@pytest.mark.asyncio
async def test_non_streaming_request_is_rejected(server: FakeOpenAI) -> None:
    server.enqueue(StreamResponse(content_chunks(["hi"])))

    async with _client(server) as client:
        with pytest.raises(openai.BadRequestError, match=STREAM_REQUIRED):
            await client.chat.completions.create(model="gpt-4o-mini", messages=[])


@pytest.mark.asyncio
async def test_sequential_requests_are_recorded(server: FakeOpenAI) -> None:
    server.enqueue(*(StreamResponse(content_chunks([str(n)])) for n in range(3)))

    async with _client(server) as client:
        for _ in range(3):
            stream = await client.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": "hi"}],
                tools=[WEATHER_TOOL],
                stream=True,
            )
            assert [c async for c in stream][-1].choices[0].finish_reason == "stop"

    assert server.completed_streams == 3
    request = server.requests[0]
    assert request["model"] == "gpt-4o-mini"
    assert request["messages"] == [{"role": "user", "content": "hi"}]
    assert request["tools"] == [WEATHER_TOOL]
    assert request["stream"] is True


def test_stop_closes_a_stalled_connection() -> None:
    body = {"model": "gpt-4o-mini", "messages": [], "stream": True}
    errors: list[Exception] = []

    def consume(url: str) -> None:
        try:
            httpx.post(url, json=body, timeout=30)
        except httpx.HTTPError as error:
            errors.append(error)

    with FakeOpenAI() as server:
        server.enqueue(StreamResponse(content_chunks(["a"]), stall_after=1))
        client = threading.Thread(target=consume, args=(f"{server.base_url}/chat/completions",))
        client.start()
        deadline = time.monotonic() + 5
        while not server.requests and time.monotonic() < deadline:
            time.sleep(0.01)
        started = time.monotonic()
        server.stop()
        client.join(5)

    assert time.monotonic() - started < 3
    assert not client.is_alive()
    assert len(errors) == 1
    assert isinstance(errors[0], httpx.RemoteProtocolError)


@pytest.mark.asyncio
async def test_langchain_openai_streams_tool_calls(server: FakeOpenAI) -> None:
    arguments = '{"city": "Paris"}'
    calls = [("call_1", "get_weather", split_text(arguments, 3))]
    server.enqueue(StreamResponse(tool_calls_chunks(calls, usage=(9, 4))))
    llm = ChatOpenAI(
        model="gpt-4o-mini",
        api_key="test",
        base_url=server.base_url,
        max_retries=0,
        streaming=True,
        stream_usage=True,
    )

    chunks = [chunk async for chunk in llm.astream("hi")]

    tool_chunks = [(t["index"], t["id"], t["name"]) for c in chunks for t in c.tool_call_chunks]
    assert tool_chunks == [(0, "call_1", "get_weather")] + [(0, None, None)] * 6
    assert sum(c.usage_metadata is not None for c in chunks) == 1
    merged = chunks[0]
    for chunk in chunks[1:]:
        merged += chunk
    assert isinstance(merged, AIMessageChunk)
    assert merged.tool_calls == [
        {"name": "get_weather", "args": {"city": "Paris"}, "id": "call_1", "type": "tool_call"}
    ]
    assert merged.usage_metadata is not None
    assert merged.usage_metadata["input_tokens"] == 9
    assert merged.usage_metadata["output_tokens"] == 4
    assert merged.usage_metadata["total_tokens"] == 13
    assert server.requests[0]["stream_options"] == {"include_usage": True}
