"""Getting a process ready for its first answer: what the first run would otherwise pay for.

The first answer after a start used to wait some 250-500 ms longer than the next ones: importing
`langchain_openai` and `openai`, building the model and its clients, converting the tools, and
the first pass of LangChain, pydantic, the `openai` client and the HTTP stack over a request and
a streamed reply. `warm_up_model` does all of that before the process serves anyone: it builds the
shared model (`llm.build_chat_model`) and rehearses one whole run on a throwaway model of the same
class, whose requests a server of its own on a loopback port answers (nothing leaves the machine
or reaches the model service, and nothing is bound to the server's event loop).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import ConfigurableField
from langchain_core.tools import BaseTool

from agent_runtime.executor import AgentRun
from agent_runtime.llm import ModelConfig, build_chat_model, chat_openai, tool_schemas
from agent_runtime.offline_model import OfflineDemoModel

logger = logging.getLogger(__name__)

REHEARSAL_TIMEOUT = 30.0
REHEARSAL_ANSWER = "Ready."


def warm_up_model(config: ModelConfig, tools: Sequence[BaseTool], system_prompt: str) -> float:
    """Build the config's shared model and rehearse one run without the model service (see `_rehearse`);
    the seconds it took."""
    started = time.perf_counter()
    build_chat_model(config)
    tool_schemas(tools)
    errors: list[BaseException] = []

    def rehearse() -> None:
        try:
            asyncio.run(asyncio.wait_for(_rehearse(config, tools, system_prompt), REHEARSAL_TIMEOUT))
        except BaseException as error:  # reported by the caller's thread
            errors.append(error)

    # A thread of its own, so that its event loop is never the caller's (the server's may be set up already).
    thread = threading.Thread(target=rehearse, name="model-warm-up", daemon=True)
    thread.start()
    thread.join(REHEARSAL_TIMEOUT + 5)
    if errors:
        raise errors[0]
    return time.perf_counter() - started


async def _rehearse(config: ModelConfig, tools: Sequence[BaseTool], system_prompt: str) -> str:
    """One run over a throwaway model of the config's kind. For ChatOpenAI, its requests go over a real
    loopback connection to a server of this loop's own, so that the HTTP stack's first use (connection,
    its async backend, the HTTP/1.1 parser, the SSE decoder) happens here too."""
    server = None
    client = None
    if config.uses_offline_model:
        llm: BaseChatModel = OfflineDemoModel(tokens_per_second=0)
    else:
        import openai

        server = await asyncio.start_server(_answer_once, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = openai.DefaultAsyncHttpxClient(trust_env=False)  # loopback: never through a proxy
        rehearsal = ModelConfig(
            api_key="warm-up", base_url=f"http://127.0.0.1:{port}/v1", model=config.model, max_retries=0
        )
        llm = chat_openai(rehearsal, http_async_client=client)
    try:
        run = AgentRun(
            llm=llm.configurable_fields(callbacks=ConfigurableField(id="callbacks")),
            model_name="warm-up",
            user_input="warm-up",
            tools=tools,
            system_prompt=system_prompt,
            max_iterations=2,
        )
        status = "unfinished"
        async for event in run:  # how it ends does not matter (the offline model may ask for a tool): it ran
            if event["type"] == "done":
                status = event["status"]
        return status
    finally:
        if client is not None:
            await client.aclose()
        if server is not None:
            server.close()
            await server.wait_closed()


async def _answer_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Read one HTTP request, answer it with a streamed `final_answer` call, close."""
    try:
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        await reader.readexactly(length)
        body = _sse_answer()
        head = (
            "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        writer.write(head.encode("latin-1") + body)
        await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError, ValueError):
        pass
    finally:
        writer.close()


def _sse_answer() -> bytes:
    """A streamed `final_answer` call, as an OpenAI-compatible server sends it."""
    arguments = json.dumps({"answer": REHEARSAL_ANSWER, "tools_used": []})
    call = {"index": 0, "id": "call_warm_up", "type": "function", "function": {"name": "final_answer", "arguments": ""}}
    deltas: list[dict[str, Any]] = [
        {"role": "assistant", "content": None},
        {"tool_calls": [call]},
        *({"tool_calls": [{"index": 0, "function": {"arguments": part}}]} for part in (arguments[:12], arguments[12:])),
    ]
    chunks = [_chunk(delta) for delta in deltas] + [_chunk({}, "tool_calls")]
    usage = _chunk({}, None)
    usage["choices"] = []
    usage["usage"] = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
    events = [f"data: {json.dumps(chunk)}\n\n" for chunk in [*chunks, usage]]
    return ("".join(events) + "data: [DONE]\n\n").encode()


def _chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-warm-up",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "warm-up",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
