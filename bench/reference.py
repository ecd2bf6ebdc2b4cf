"""The two references the product's relay is measured against, served next to it.

Both stream the same offline model at the same pace to a tab that speaks the product's
protocol (snapshot on connect, `send` to start, events with `type`, `run_id`, `seq`), but
each tab gets its own stream:

- `LessonConsumer`, the streaming lesson's pattern: run an `AgentRun`, poll its handler's
  queue (`asyncio.sleep(0.1)` while empty) and send one frame per event to its own socket.
- `FloorConsumer`, the floor: a LangChain callback that sends each token straight to the
  socket from `on_llm_new_token`; no queue, no group, no persistence, no agent loop.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from uuid import uuid4

from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.urls import path
from langchain_core.callbacks import AsyncCallbackHandler
from langchain_core.messages import HumanMessage

from agent_runtime import events
from agent_runtime.answer_stream import AnswerStream
from agent_runtime.assistants import ArithmeticAssistant
from agent_runtime.executor import AgentRun
from agent_runtime.llm import build_chat_model
from agent_runtime.offline_model import OfflineDemoModel
from agent_runtime.tools import FINAL_ANSWER

LESSON_POLL_SECONDS = 0.1
EMPTY_SNAPSHOT = json.dumps({"type": "snapshot", "messages": [], "active_run": None})


def dumps(event: dict[str, Any]) -> str:
    """An event as the product serialises it."""
    return json.dumps(event, separators=(",", ":"))


class ReferenceConsumer(AsyncWebsocketConsumer):
    """Accept, send an empty snapshot, and start one stream per `send` frame."""

    task: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        """Accept any logged-in tab (the bench's clients are)."""
        await self.accept()
        await self.send(text_data=EMPTY_SNAPSHOT)

    async def disconnect(self, code: int) -> None:
        """Stop this tab's stream."""
        if self.task is not None:
            self.task.cancel()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Start a stream for a `send` frame, unless one is running."""
        frame = json.loads(text_data or "{}")
        if frame.get("type") != "send":
            return
        if self.task is not None and not self.task.done():
            await self.send(text_data=dumps({"type": "error", "code": "busy", "client_id": frame.get("client_id")}))
            return
        self.task = asyncio.create_task(self.stream(str(frame.get("content", ""))))

    async def stream(self, content: str) -> None:
        """Stream one answer to this socket."""
        raise NotImplementedError


class LessonConsumer(ReferenceConsumer):
    """The lesson's pattern: poll the run's queue every 100 ms, one frame per event."""

    async def stream(self, content: str) -> None:
        """Run the agent as a task and relay its queue the way the lesson did."""
        config = settings.AGENT_MODEL
        run = AgentRun(
            llm=build_chat_model(config),
            model_name=config.display_name,
            user_input=content,
            tools=ArithmeticAssistant(user=None).local_tools(),
            system_prompt=ArithmeticAssistant.system_prompt(),
            max_iterations=settings.AGENT_MAX_ITERATIONS,
            timeout=settings.AGENT_RUN_TIMEOUT,
        )
        # The lesson starts the agent as a task and reads the callback's queue itself;
        # `_produce` is that task's body (iterating the AgentRun would read the queue for us).
        producer = asyncio.create_task(run._produce())
        queue = run.stream.queue
        seq = 0
        try:
            while True:
                if queue.empty():
                    await asyncio.sleep(LESSON_POLL_SECONDS)
                    continue
                event = queue.get_nowait()
                seq += 1
                event["seq"] = seq
                await self.send(text_data=dumps(event))
                if event["type"] == events.DONE:
                    return
        finally:
            producer.cancel()
            await asyncio.gather(producer, return_exceptions=True)


class FloorHandler(AsyncCallbackHandler):
    """Sends each piece of the answer to the socket from inside `on_llm_new_token`."""

    run_inline = True

    def __init__(self, consumer: FloorConsumer, run_id: str) -> None:
        self.consumer = consumer
        self.run_id = run_id
        self.seq = 0
        self.answer = AnswerStream()
        self.in_answer = False

    async def emit(self, event_type: str, **fields: Any) -> None:
        """Send one event frame, numbered."""
        self.seq += 1
        await self.consumer.send(
            text_data=dumps({"type": event_type, "run_id": self.run_id, "seq": self.seq, **fields})
        )

    async def on_llm_new_token(self, token: str, *, chunk: Any = None, **kwargs: Any) -> None:
        """Decode the final answer's new text and send it at once."""
        message = getattr(chunk, "message", None)
        for call in getattr(message, "tool_call_chunks", None) or []:
            if call.get("name"):
                self.in_answer = call["name"] == FINAL_ANSWER
            text = self.answer.feed(call.get("args") or "") if self.in_answer else ""
            if text:
                await self.emit(events.TOKEN, text=text)


class FloorConsumer(ReferenceConsumer):
    """The floor: the model's callback writes to the one socket, nothing in between."""

    async def stream(self, content: str) -> None:
        """Stream the offline model once; frame run_started, tokens, final and done."""
        config = settings.AGENT_MODEL
        handler = FloorHandler(self, uuid4().hex)
        await handler.emit(events.RUN_STARTED, model=config.display_name)
        model = OfflineDemoModel(tokens_per_second=config.offline_tokens_per_second)
        async for _chunk in model.astream([HumanMessage(content=content)], config={"callbacks": [handler]}):
            pass
        await handler.emit(events.FINAL, content=handler.answer.text, tools_used=[], usage={})
        await handler.emit(events.DONE, status="completed")


websocket_urlpatterns = [
    path("ws/bench/lesson/", LessonConsumer.as_asgi()),
    path("ws/bench/floor/", FloorConsumer.as_asgi()),
]
