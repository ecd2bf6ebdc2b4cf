"""QueueCallbackHandler: LangChain's hooks become protocol events on an asyncio.Queue.

One handler per run, never shared between runs: it holds the run's queue, the
state of the LLM step being streamed, and the run's sequence numbers. Iterating
the handler awaits the queue (no polling), numbers the events and ends after `done`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from langchain_core.callbacks import AsyncCallbackHandler
from langchain_core.outputs import ChatGenerationChunk, LLMResult
from typing_extensions import override

from agent_runtime import events
from agent_runtime.answer_stream import AnswerStream
from agent_runtime.errors import describe_model_error
from agent_runtime.events import Event
from agent_runtime.tools import FINAL_ANSWER


@dataclass
class StreamedCall:
    """What the stream has shown of one tool call of the current step."""

    index: int
    call_id: str
    raw_id: str | None = None
    name: str = ""
    announced: bool = False
    pending_args: list[str] = field(default_factory=list)
    answer: AnswerStream | None = None


class QueueCallbackHandler(AsyncCallbackHandler):
    """Turns one run's LLM stream into events; iterate it to read them in order."""

    # Called inline, not in a task gathered per event: the hooks never await, so a cancel
    # lands in the model's HTTP read, which closes the stream, and not in LangChain's
    # callback dispatch between two chunks, which leaves the stream open for the GC.
    run_inline = True

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.queue: asyncio.Queue[Event] = asyncio.Queue()
        self.calls: dict[int, StreamedCall] = {}
        self.answer_text = ""
        self.reported_error: BaseException | None = None
        self._step = 0
        self._used_ids: set[str] = set()
        self._seq = 0
        self._held: Event | None = None

    def put(self, event_type: str, **fields: Any) -> None:
        """Queue an event; its `seq` is given when it is read."""
        self.queue.put_nowait({"type": event_type, "run_id": self.run_id, "seq": 0, **fields})

    async def __aiter__(self) -> AsyncIterator[Event]:
        while True:
            event = await self.next_event()
            yield event
            if event["type"] == events.DONE:
                return

    async def next_event(self) -> Event:
        """Await the next event, fold in the text that waits behind it, and number it."""
        event, self._held = self._held, None
        if event is None:
            event = await self.queue.get()
        while event["type"] in (events.TOKEN, events.TOOL_ARGS):
            try:
                following = self.queue.get_nowait()
            except asyncio.QueueEmpty:
                break
            if not events.is_mergeable(event, following):
                self._held = following
                break
            events.merge_into(event, following)
        self._seq += 1
        event["seq"] = self._seq
        return event

    def begin_step(self, step: int) -> None:
        """Forget the previous LLM step's calls before the next one streams."""
        self._step = step
        self.calls = {}

    def add_answer_text(self, text: str) -> None:
        """Stream a piece of the final answer."""
        if text:
            self.answer_text += text
            self.put(events.TOKEN, text=text)

    def finish_answer(self, answer: str) -> str:
        """Stream whatever of `answer` the partial parse has not shown; return the text shown."""
        if answer.startswith(self.answer_text):
            self.add_answer_text(answer[len(self.answer_text) :])
        return self.answer_text

    @property
    def made_tool_calls(self) -> bool:
        """Whether the current step called a tool other than final_answer."""
        return any(call.name and call.name != FINAL_ANSWER for call in self.calls.values())

    @override
    async def on_llm_new_token(
        self,
        token: str,
        *,
        chunk: ChatGenerationChunk | None = None,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        if chunk is None:
            self.add_answer_text(token)
            return
        message = chunk.message
        self.add_answer_text(_text_of(message.content))
        for call_chunk in getattr(message, "tool_call_chunks", None) or []:
            self._on_call_chunk(call_chunk)

    @override
    async def on_llm_end(
        self, response: LLMResult, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        if self.made_tool_calls:
            self.put(events.STEP_END)

    @override
    async def on_llm_error(
        self,
        error: BaseException,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        if isinstance(error, asyncio.CancelledError | GeneratorExit):
            return
        code, text = describe_model_error(error)
        self.reported_error = error
        self.put(events.ERROR, code=code, message=text)

    def _on_call_chunk(self, call_chunk: dict[str, Any]) -> None:
        index = call_chunk.get("index")
        index = index if isinstance(index, int) else len(self.calls)
        call = self.calls.get(index)
        if call is None:
            call = self.calls[index] = StreamedCall(index=index, call_id="")
        if call_chunk.get("id") and call.raw_id is None:
            call.raw_id = call_chunk["id"]
        if call_chunk.get("name") and not call.name:
            call.name = call_chunk["name"]
        if call_chunk.get("args"):
            call.pending_args.append(call_chunk["args"])
        if call.name:
            self._flush_call(call)

    def _flush_call(self, call: StreamedCall) -> None:
        if not call.announced:
            call.announced = True
            call.call_id = self._unique_call_id(call)
            if call.name == FINAL_ANSWER:
                # Only the step's first answer streams: the executor answers with the first.
                if not any(other.answer is not None for other in self.calls.values()):
                    call.answer = AnswerStream()
            else:
                self.put(events.TOOL_START, call_id=call.call_id, name=call.name)
        args, call.pending_args = "".join(call.pending_args), []
        if not args:
            return
        if call.name != FINAL_ANSWER:
            self.put(events.TOOL_ARGS, call_id=call.call_id, delta=args)
        elif call.answer is not None:
            self.add_answer_text(call.answer.feed(args))

    def _unique_call_id(self, call: StreamedCall) -> str:
        call_id = call.raw_id or f"call_{self._step}_{call.index}"
        while call_id in self._used_ids:
            call_id += "_"
        self._used_ids.add(call_id)
        return call_id

    def call_id_for(self, index: int, raw_id: str | None) -> str:
        """The call id the events used for this step's call at `index` (made up if never streamed)."""
        call = self.calls.get(index)
        if call is not None and call.announced:
            return call.call_id
        call = self.calls[index] = StreamedCall(index=index, call_id="", raw_id=raw_id)
        call.call_id = self._unique_call_id(call)
        call.announced = True
        return call.call_id


def _text_of(content: Any) -> str:
    """The plain text of a message chunk's content (a string or a list of content blocks)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            block.get("text", "") if isinstance(block, dict) and block.get("type") == "text" else ""
            for block in content
        )
    return ""
