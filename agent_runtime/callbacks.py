"""QueueCallbackHandler: LangChain's hooks become protocol events on the run's EventStream.

One handler per run, never shared between runs. It only translates: each streamed chunk of
an LLM step becomes `token`, `tool_start` and `tool_args` events, the step's end a `step_end`.
The numbering and merging belong to the `EventStream`; the answer text and the calls' ids to
the run's `RunTranscript`, which the executor owns. Text from the model is cleaned
(`text.clean_text`) before it is streamed, so what the tabs see is what can be stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from langchain_core.callbacks import AsyncCallbackHandler
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGenerationChunk, LLMResult
from typing_extensions import override

from agent_runtime import events
from agent_runtime.answer_stream import AnswerStream
from agent_runtime.stream import EventStream
from agent_runtime.text import clean_text
from agent_runtime.tools import FINAL_ANSWER
from agent_runtime.transcript import RunTranscript


@dataclass
class StreamedCall:
    """What the stream has shown of one tool call of the current step."""

    index: int
    call_id: str = ""
    raw_id: str | None = None
    name: str = ""
    announced: bool = False
    pending_args: list[str] = field(default_factory=list)
    answer: AnswerStream | None = None


class QueueCallbackHandler(AsyncCallbackHandler):
    """Turns one run's LLM stream into events on its EventStream."""

    # Called inline, not in a task gathered per event: the hooks never await, so a cancel
    # lands in the model's HTTP read, which closes the stream, and not in LangChain's
    # callback dispatch between two chunks, which leaves the stream open for the GC.
    run_inline = True

    def __init__(self, *, run_id: str, stream: EventStream, transcript: RunTranscript) -> None:
        self.run_id = run_id
        self._stream = stream
        self._transcript = transcript
        self._calls: dict[int, StreamedCall] = {}

    @override
    async def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        self._calls = {}

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
            self.answer(token)
            return
        message = chunk.message
        self.answer(_text_of(message.content))
        for call_chunk in getattr(message, "tool_call_chunks", None) or []:
            self._on_call_chunk(call_chunk)

    @override
    async def on_llm_end(
        self, response: LLMResult, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        if any(call.name and call.name != FINAL_ANSWER for call in self._calls.values()):
            self._stream.emit(events.step_end(run_id=self.run_id))

    def answer(self, text: str) -> None:
        """Stream more of the final answer: cleaned, added to the transcript, sent as a `token`.

        The one way answer text is shown, whether it comes from the model's stream or from the
        executor (the end of an answer the partial parse had not shown yet)."""
        text = clean_text(text)
        if text:
            self._transcript.add_answer(text)
            self._stream.emit(events.token(run_id=self.run_id, text=text))

    def _on_call_chunk(self, call_chunk: dict[str, Any]) -> None:
        index = call_chunk.get("index")
        index = index if isinstance(index, int) else len(self._calls)
        call = self._calls.get(index)
        if call is None:
            call = self._calls[index] = StreamedCall(index=index)
        if call_chunk.get("id") and call.raw_id is None:
            call.raw_id = clean_text(call_chunk["id"])
        if call_chunk.get("name") and not call.name:
            call.name = clean_text(call_chunk["name"])
        if call_chunk.get("args"):
            call.pending_args.append(call_chunk["args"])
        if call.name:
            self._flush_call(call)

    def _flush_call(self, call: StreamedCall) -> None:
        if not call.announced:
            call.announced = True
            call.call_id = self._transcript.call_id(call.index, call.raw_id)
            if call.name == FINAL_ANSWER:
                # Only the step's first answer streams: the executor answers with the first.
                if not any(other.answer is not None for other in self._calls.values()):
                    call.answer = AnswerStream()
            else:
                self._stream.emit(events.tool_start(run_id=self.run_id, call_id=call.call_id, name=call.name))
        args, call.pending_args = "".join(call.pending_args), []
        if not args:
            return
        if call.name != FINAL_ANSWER:
            delta = clean_text(args)
            self._stream.emit(events.tool_args(run_id=self.run_id, call_id=call.call_id, delta=delta))
        elif call.answer is not None:
            self.answer(call.answer.feed(args))


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
