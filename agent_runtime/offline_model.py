"""The offline demo model: a real chat model that needs no key and no network.

It streams tool-call chunks in small fragments at a set pace, the way a hosted
model does. It works out arithmetic step by step with the tools (independent
operations in parallel), counts ("count to 50"), and for anything else explains
that it is the offline demo and how to configure a real model. The same input
always gives the same stream. "Simulate an error" makes it fail mid-answer, to
show what a model failure looks like; "stamp 300 tokens" answers 300 tokens that
each carry the time they were emitted, for the benchmark.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.utils.function_calling import convert_to_openai_tool

from agent_runtime import stages
from agent_runtime.arithmetic import (
    MAX_TOKENS,
    ExpressionTooComplex,
    Operation,
    parse_expression,
    plan_ready_operations,
)

OFFLINE_MODEL_NAME = "offline-demo"
MAX_COUNT = 5000
FAIL_AFTER_FRAGMENTS = 6
# "stamp N tokens" answers N tokens, each the monotonic time it was emitted at: a latency probe.
STAMP = "@@now@@"

NOT_ARITHMETIC = (
    "I'm the offline demo model, so I can only work out arithmetic, step by step with my "
    'tools: try "What is (3 + 4) * 2 ^ 3?" or "what is 7 times 6 minus 2". I can also '
    '"count to 20". To talk to a real model, set OPENAI_API_KEY (and OPENAI_BASE_URL for '
    "any OpenAI-compatible server) and restart the server."
)
SIMULATED_FAILURE = "The offline demo model failed on purpose, as asked."
TOO_COMPLEX = (
    f"That expression is too long or too deeply nested for the demo model: it works with at most "
    f"{MAX_TOKENS} numbers, operators and parentheses at a time."
)


SEARCH_TOOL = "search_my_conversations"
CANNOT_USE_TOOLS = (
    "I'm the offline demo model: I can work out arithmetic and search your earlier conversations, "
    "but not use this assistant's tools. To talk to a real model, set OPENAI_API_KEY (and "
    "OPENAI_BASE_URL for any OpenAI-compatible server) and restart the server."
)
FOUND_INTRO = "Here is what I found in your earlier conversations:\n\n"
_FILLER = re.compile(
    r"\b(what|did|do|i|ask|asked|about|when|where|have|we|talk|talked|my|me|the|a|an|last|week|month|"
    r"yesterday|earlier|before|conversations?|find|search|for|show|any|was|it|that|on|in|of)\b|[?!.,]",
    re.IGNORECASE,
)


class SimulatedModelFailure(RuntimeError):
    """Raised mid-stream when the user asks the demo model to simulate an error."""


class OfflineDemoModel(BaseChatModel):
    """Deterministic demo model streaming OpenAI-style tool calls at `tokens_per_second`."""

    tokens_per_second: float = 30.0
    """Fragments streamed per second; 0 streams as fast as possible."""

    @property
    def _llm_type(self) -> str:
        return OFFLINE_MODEL_NAME

    def bind_tools(self, tools: Sequence[Any], *, tool_choice: str | None = None, **kwargs: Any) -> Runnable:
        """Bind tools the way hosted models do; the demo follows its own plan regardless."""
        schemas = [convert_to_openai_tool(t) for t in tools]
        return self.bind(tools=schemas, tool_choice=tool_choice, **kwargs)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        merged: AIMessageChunk | None = None
        for chunk in _reply_chunks(messages, _tool_names(kwargs)):
            merged = chunk if merged is None else merged + chunk
        message = AIMessage(
            content=merged.content,
            tool_calls=merged.tool_calls,
            usage_metadata=merged.usage_metadata,
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        stages.stamp("request")
        interval = 1.0 / self.tokens_per_second if self.tokens_per_second > 0 else 0.0
        started = time.monotonic()
        for position, chunk in enumerate(_reply_chunks(messages, _tool_names(kwargs))):
            delay = started + position * interval - time.monotonic()
            await asyncio.sleep(max(0, delay))
            yield ChatGenerationChunk(message=_stamped(chunk))


def _tool_names(kwargs: dict[str, Any]) -> set[str]:
    """The names of the tools bound to this call (none bound: the arithmetic demo's)."""
    tools = kwargs.get("tools")
    if not tools:
        return {"add"}
    return {t.get("function", {}).get("name", "") for t in tools}


def _reply_chunks(messages: list[BaseMessage], tool_names: set[str]) -> Iterator[AIMessageChunk]:
    """The reply to the conversation so far, as a stream of chunks ending with usage."""
    question, turn = _current_turn(messages)
    fail = "simulate an error" in question.lower()
    fragments = 0
    if SEARCH_TOOL in tool_names:
        plan = _search_plan(question, turn)
    elif "add" in tool_names:
        plan = _plan_chunks(question, turn)
    else:
        plan = _answer_chunks(CANNOT_USE_TOOLS, [])
    for fragments, chunk in enumerate(plan, start=1):
        if fail and fragments > FAIL_AFTER_FRAGMENTS:
            raise SimulatedModelFailure(SIMULATED_FAILURE)
        yield chunk
    prompt_tokens = sum(len(str(m.content)) for m in messages) // 4 + 1
    yield AIMessageChunk(
        content="",
        usage_metadata={
            "input_tokens": prompt_tokens,
            "output_tokens": fragments,
            "total_tokens": prompt_tokens + fragments,
        },
    )


def _current_turn(messages: list[BaseMessage]) -> tuple[str, list[BaseMessage]]:
    """The latest user question and the messages of this turn that follow it."""
    for position in range(len(messages) - 1, -1, -1):
        if isinstance(messages[position], HumanMessage):
            return str(messages[position].content), messages[position + 1 :]
    return "", []


def _plan_chunks(question: str, turn: list[BaseMessage]) -> Iterator[AIMessageChunk]:
    results = {m.tool_call_id: m.content for m in turn if isinstance(m, ToolMessage)}
    failures = [text for text in results.values() if str(text).startswith("Error")]
    if failures:
        yield from _answer_chunks(f"I could not work that out: {failures[0]}", [])
        return
    stamps = re.search(r"\bstamp (\d+) tokens\b", question, re.IGNORECASE)
    if stamps:
        yield from _answer_chunks(" ".join([STAMP] * min(int(stamps.group(1)), MAX_COUNT)), [])
        return
    counted = re.search(r"\bcount (?:up )?to (\d+)", question, re.IGNORECASE)
    if counted:
        limit = min(int(counted.group(1)), MAX_COUNT)
        yield from _answer_chunks(", ".join(str(n) for n in range(1, limit + 1)) + ".", [])
        return
    try:
        expression = parse_expression(question)
    except ExpressionTooComplex:
        yield from _answer_chunks(TOO_COMPLEX, [])
        return
    if expression is None:
        yield from _answer_chunks(NOT_ARITHMETIC, [])
        return
    known = {int(call_id.rsplit("_", 1)[1]): json.loads(text) for call_id, text in results.items()}
    ready, steps = plan_ready_operations(expression, known)
    if ready:
        for index, operation in enumerate(ready):
            yield from _tool_call_chunks(index, operation)
        return
    yield from _answer_chunks(_explain(expression, steps), sorted({s.tool for s in steps}))


def _search_plan(question: str, turn: list[BaseMessage]) -> Iterator[AIMessageChunk]:
    """The history assistant offline: search the user's conversations, then show what was found."""
    found = [str(m.content) for m in turn if isinstance(m, ToolMessage)]
    if found:
        text = found[-1]
        if text.startswith('"') and text.endswith('"'):
            text = json.loads(text)
        yield from _answer_chunks(text if text.startswith("Error") else FOUND_INTRO + text, [SEARCH_TOOL])
        return
    about = re.search(r"\babout (.+?)(?:\s+(?:last|this|yesterday|earlier|before)\b.*)?[?.!]*$", question, re.I)
    query = about.group(1) if about else " ".join(_FILLER.sub(" ", question).split())
    pieces = ['{"query": ', json.dumps(query.strip() or question.strip()), "}"]
    yield _call_chunk(0, pieces[0], call_id="call_search", name=SEARCH_TOOL)
    for piece in pieces[1:]:
        yield _call_chunk(0, piece)


def _tool_call_chunks(index: int, operation: Operation) -> Iterator[AIMessageChunk]:
    """One tool call typed in fragments: the id and name first, then the arguments."""
    pieces = ['{"x": ', json.dumps(operation.x), ', "y": ', json.dumps(operation.y), "}"]
    call_id = f"call_{operation.number}"
    yield _call_chunk(index, pieces[0], call_id=call_id, name=operation.tool)
    for piece in pieces[1:]:
        yield _call_chunk(index, piece)


def _answer_chunks(answer: str, tools_used: list[str]) -> Iterator[AIMessageChunk]:
    """A final_answer call whose `answer` streams a word (about a token) at a time."""
    yield _call_chunk(0, '{"answer": "', call_id="call_answer", name="final_answer")
    for word in re.findall(r"\S+\s*|\s+", answer):
        yield _call_chunk(0, json.dumps(word, ensure_ascii=False)[1:-1])
    yield _call_chunk(0, f'", "tools_used": {json.dumps(tools_used)}}}')


def _stamped(chunk: AIMessageChunk) -> AIMessageChunk:
    """Put the emission time (monotonic seconds) into a latency-probe token as it leaves."""
    call = chunk.tool_call_chunks[0] if chunk.tool_call_chunks else None
    if call is None or STAMP not in (call["args"] or ""):
        return chunk
    return _call_chunk(call["index"], call["args"].replace(STAMP, f"{time.monotonic():.6f}"))


def _call_chunk(index: int, args: str, *, call_id: str | None = None, name: str | None = None) -> AIMessageChunk:
    return AIMessageChunk(
        content="",
        tool_call_chunks=[{"name": name, "args": args, "id": call_id, "index": index}],
    )


def _explain(expression: str, steps: list[Operation]) -> str:
    if len(steps) == 1:
        return f"{expression} = {_number(steps[0].result)}."
    worked = ", then ".join(f"{_number(s.x)} {s.symbol} {_number(s.y)} = {_number(s.result)}" for s in steps)
    return f"Step by step: {worked}. So {expression} = {_number(steps[-1].result)}."


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
