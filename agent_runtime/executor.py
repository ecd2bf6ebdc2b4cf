"""The streaming agent loop: one `AgentRun` per user message.

Iterating an `AgentRun` yields protocol events (see `events.py`) and always ends
with exactly one `done`, whatever happens: tool failures go back to the model,
model failures become an `error`, the run-wide deadline a `timeout`, and
`cancel()` (or cancelling the task that iterates) stops the LLM call itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any
from uuid import uuid4

from langchain_core.messages import AIMessageChunk, BaseMessage, ToolMessage
from langchain_core.messages.utils import count_tokens_approximately
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool

from agent_runtime import events, stages
from agent_runtime.approvals import ApprovalGate, ApprovalOutcome, ApprovalRequest, NoApprovals
from agent_runtime.callbacks import QueueCallbackHandler
from agent_runtime.errors import (
    TOOL_TIMED_OUT,
    ToolCallRefused,
    describe_model_error,
    describe_tool_error,
    tool_failure,
)
from agent_runtime.events import Event
from agent_runtime.history import HistoryTurn, as_messages
from agent_runtime.llm import shared_model, tool_schemas
from agent_runtime.report import RunReport, ToolStep
from agent_runtime.stream import EventStream
from agent_runtime.text import clean_text, clean_value, refuse_constant
from agent_runtime.tools import FINAL_ANSWER, TOOLS_BY_NAME
from agent_runtime.transcript import RunTranscript

logger = logging.getLogger(__name__)

DEFAULT_MAX_ITERATIONS = 8
DEFAULT_TIMEOUT = 120.0
DEFAULT_TOOL_TIMEOUT = 60.0
DEFAULT_HISTORY_LIMIT = 20

MAX_ITERATIONS_REACHED = "The agent used {n} steps without reaching an answer."
RUN_TIMED_OUT = "The answer took longer than {seconds:g} seconds and was stopped."
EMPTY_RESPONSE = "The model returned an empty response."
UNKNOWN_TOOL = "unknown tool {name!r}; the tools are: {names}"
INVALID_JSON = "the arguments are not valid JSON: {error}"
TOOL_RESULT_MAX_CHARS = 20_000
RESULT_CUT = "… (cut at {limit:,} characters)"

PROMPT = ChatPromptTemplate.from_messages(
    [
        ("system", "{system_prompt}"),
        MessagesPlaceholder(variable_name="chat_history"),
        ("human", "{input}"),
        MessagesPlaceholder(variable_name="agent_scratchpad"),
    ]
)


class _StopRun(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class AgentRun:
    """One streaming run of the agent over a conversation's history and a new user message.

    The assistant it runs is its `tools` and `system_prompt` (an `Assistant`'s `tools()` and
    `system_prompt()`): there is no default assistant.
    """

    def __init__(
        self,
        *,
        llm: Runnable,
        model_name: str,
        user_input: str,
        tools: Sequence[BaseTool],
        system_prompt: str,
        history: Sequence[HistoryTurn] = (),
        run_id: str | None = None,
        max_iterations: int = DEFAULT_MAX_ITERATIONS,
        timeout: float = DEFAULT_TIMEOUT,
        tool_timeout: float = DEFAULT_TOOL_TIMEOUT,
        history_limit: int = DEFAULT_HISTORY_LIMIT,
        needs_approval: Callable[[str, dict[str, Any]], bool] | None = None,
        approvals: ApprovalGate | None = None,
        first_output_wait: float = 0.0,
    ) -> None:
        self.run_id = run_id or uuid4().hex
        self.report = RunReport(run_id=self.run_id, model=model_name)
        self.stream = EventStream()
        self.transcript = RunTranscript()
        self.handler = QueueCallbackHandler(run_id=self.run_id, stream=self.stream, transcript=self.transcript)
        self._llm = llm
        self._tools = {t.name: t for t in tools}
        self._user_input = user_input
        self._history = as_messages(list(history)[-history_limit:]) if history_limit else []
        self._max_iterations = max_iterations
        self._timeout = timeout
        self._tool_timeout = tool_timeout
        self._system_prompt = system_prompt
        self._producer: asyncio.Task[None] | None = None
        self._cancel_requested = False
        self._needs_approval = needs_approval
        self._approvals: ApprovalGate = approvals or NoApprovals()
        self._deadline: asyncio.Timeout | None = None
        self._waiting = 0
        self._remaining: float | None = None
        self._first_output_wait = first_output_wait
        self._first_output_sent = asyncio.Event()

    @property
    def answer_so_far(self) -> str:
        """The answer text streamed so far."""
        return self.transcript.answer_text

    def first_output_sent(self) -> None:
        """Whoever relays the events says the run's first words (or tool call) have gone out."""
        self._first_output_sent.set()

    async def _first_output_delivery(self) -> None:
        """With `first_output_wait`, hold the model's stream until the first words have gone out (at
        most that long): a fast model's chunks arrive in bursts, read and parsed at once, and the
        relay sending the first words would otherwise wait for the whole burst."""
        if self._first_output_wait > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._first_output_sent.wait(), self._first_output_wait)

    def cancel(self) -> None:
        """Stop the run: the LLM call is closed and the run ends with `done` `cancelled`."""
        self._cancel_requested = True
        if self._producer is not None and not self._producer.done():
            self._producer.cancel()

    async def __aiter__(self) -> AsyncIterator[Event]:
        if self._producer is not None:
            raise RuntimeError("an AgentRun is iterated once")
        self._producer = asyncio.create_task(self._produce(), name=f"agent-run-{self.run_id}")
        try:
            while True:
                try:
                    event = await self.stream.next_event()
                except asyncio.CancelledError:
                    # The task iterating us was cancelled: stop the producer and hand out
                    # what it says last, so that this run too ends with its one `done`.
                    self.cancel()
                    await asyncio.gather(self._producer, return_exceptions=True)
                    async for event in self.stream:
                        yield event
                    return
                yield event
                if event["type"] == events.DONE:
                    return
        finally:
            if not self._producer.done():
                self.cancel()
                await asyncio.gather(self._producer, return_exceptions=True)

    async def _produce(self) -> None:
        self.stream.emit(events.run_started(run_id=self.run_id, model=self.report.model))
        status: events.DoneStatus = "completed"
        deadline = self._deadline = asyncio.timeout(self._timeout)
        try:
            if self._cancel_requested:
                raise asyncio.CancelledError
            async with deadline:
                await self._agent_loop()
        except asyncio.CancelledError:
            status = "cancelled"
        except TimeoutError as error:
            if deadline.expired():
                status = self._fail(events.ERROR_TIMEOUT, RUN_TIMED_OUT.format(seconds=self._timeout))
            else:  # the model client's own timeout, not the run's deadline
                status = self._fail(*describe_model_error(error))
        except _StopRun as stop:
            status = self._fail(stop.code, stop.message)
        except Exception as error:
            status = self._fail(*describe_model_error(error))
        self.report.status = status
        self.report.content = self.answer_so_far if status != "completed" else self.report.content
        self.report.first_output = self.transcript.first_output
        self.report.finished = time.time()
        if status == "completed":
            usage: events.Usage = {
                "input_tokens": self.report.usage["input_tokens"],
                "output_tokens": self.report.usage["output_tokens"],
                "total_tokens": self.report.usage["total_tokens"],
            }
            self.stream.emit(
                events.final(
                    run_id=self.run_id, content=self.report.content, tools_used=self.report.tools_used, usage=usage
                )
            )
        self.stream.emit(events.done(run_id=self.run_id, status=status))

    def _fail(self, code: str, message: str) -> events.DoneStatus:
        message = clean_text(message)
        self.report.error_code = code
        self.report.error_message = message
        self.stream.emit(events.error(run_id=self.run_id, code=code, message=message))
        return "error"

    async def _agent_loop(self) -> None:
        scratchpad: list[BaseMessage] = []
        bound = self._bind_model()
        for step in range(1, self._max_iterations + 1):
            self.transcript.begin_step(step)
            messages = PROMPT.format_messages(
                system_prompt=self._system_prompt,
                chat_history=self._history,
                input=self._user_input,
                agent_scratchpad=scratchpad,
            )
            reply = await self._stream_step(bound, messages)
            if await self._finish_if_answered(reply, scratchpad):
                return
        raise _StopRun(events.ERROR_MAX_ITERATIONS, MAX_ITERATIONS_REACHED.format(n=self._max_iterations))

    def _bind_model(self) -> Runnable:
        """The model with its tools bound and this run's callbacks in the call's config.

        `build_chat_model`'s model is shared by every run of the process: the run's callbacks go
        with its calls (never onto the shared instance), and its tools' schemas are converted once
        per tool. Any other runnable with a configurable `callbacks` field gets them through it.
        """
        callbacks = [self.handler]
        shared = shared_model(self._llm)
        if shared is not None:
            return shared.bind_tools(tool_schemas(list(self._tools.values())), tool_choice="any").with_config(
                callbacks=callbacks
            )
        llm = self._llm
        if hasattr(llm, "prepare"):
            llm, _ = llm.prepare({"configurable": {"callbacks": callbacks}})
        else:
            llm = llm.with_config(callbacks=callbacks)
        return llm.bind_tools(list(self._tools.values()), tool_choice="any")

    async def _stream_step(self, bound: Runnable, messages: list[BaseMessage]) -> AIMessageChunk:
        chunks: list[AIMessageChunk] = []
        shown = self.stream.output_emitted
        try:
            async for chunk in bound.astream(messages):
                if not chunks:
                    stages.stamp("first_chunk")
                chunks.append(chunk)
                if not shown and self.stream.output_emitted:
                    shown = True
                    await self._first_output_delivery()
        except BaseException:  # stopped, timed out or failed mid-stream: the tokens were spent all the same
            self._add_partial_usage(messages, chunks)
            raise
        if not chunks:
            raise _StopRun(events.ERROR_MODEL_FAILED, EMPTY_RESPONSE)
        # One `+` over the step's chunks: adding them one by one re-parses the growing tool-call
        # JSON at every chunk (quadratic; it was 90% of a run's CPU on long answers).
        merged = chunks[0] + chunks[1:] if len(chunks) > 1 else chunks[0]
        self._add_usage(merged)
        return merged

    def _add_usage(self, reply: AIMessageChunk) -> None:
        usage = reply.usage_metadata or {}
        for key in ("input_tokens", "output_tokens", "total_tokens"):
            self.report.usage[key] += int(usage.get(key) or 0)

    def _add_partial_usage(self, messages: list[BaseMessage], chunks: list[AIMessageChunk]) -> None:
        """A step cut short: the model's usage when it reported one, else an estimate (about four
        characters a token, langchain's `count_tokens_approximately`), marked in the report."""
        try:
            merged = (chunks[0] + chunks[1:] if len(chunks) > 1 else chunks[0]) if chunks else None
        except Exception:  # chunks that do not add up: count their text alone
            merged = AIMessageChunk(content="".join(str(chunk.content) for chunk in chunks))
        if merged is not None and merged.usage_metadata:
            self._add_usage(merged)
            return
        sent = count_tokens_approximately(messages)
        received = count_tokens_approximately([merged]) if merged is not None else 0
        self.report.usage["input_tokens"] += sent
        self.report.usage["output_tokens"] += received
        self.report.usage["total_tokens"] += sent + received
        self.report.usage_estimated = True

    async def _finish_if_answered(self, reply: AIMessageChunk, scratchpad: list[BaseMessage]) -> bool:
        """Run the step's tool calls; return True when the run has its final answer."""
        calls = _calls_of(reply)
        if not calls:
            content = self.answer_so_far
            if not content.strip():
                raise _StopRun(events.ERROR_MODEL_FAILED, EMPTY_RESPONSE)
            self.report.content = content
            return True
        answers = [c for c in calls if c["name"] == FINAL_ANSWER]
        others = [c for c in calls if c["name"] != FINAL_ANSWER]
        results = await asyncio.gather(*(self._run_tool(call) for call in others))
        scratchpad.append(reply)
        scratchpad.extend(results)
        for call in answers:
            answer, problem = await self._read_answer(call)
            if problem is None:
                self.report.content = self._finish_answer(answer)
                return True
            scratchpad.append(ToolMessage(content=f"Error: {problem}", tool_call_id=call["id"]))
        return False

    def _finish_answer(self, answer: str) -> str:
        """Stream whatever of `answer` the partial parse has not shown; return the text shown."""
        answer = clean_text(answer)
        if answer.startswith(self.answer_so_far):
            self.handler.answer(answer[len(self.answer_so_far) :])
        return self.answer_so_far

    async def _read_answer(self, call: dict[str, Any]) -> tuple[str, str | None]:
        if isinstance(call["args"], str):
            return "", INVALID_JSON.format(error=call["args_error"])
        try:
            result = await TOOLS_BY_NAME[FINAL_ANSWER].ainvoke(call["args"])
        except Exception as error:
            answer = call["args"].get("answer")
            # Its text has streamed already; a malformed `tools_used` must not make the model
            # type the answer twice. Tools used are taken from what ran anyway.
            return (answer, None) if isinstance(answer, str) else ("", describe_tool_error(error))
        return result["answer"], None

    async def _run_tool(self, call: dict[str, Any]) -> ToolMessage:
        call_id = self.transcript.call_id(call["index"], call["id"])
        step = ToolStep(call_id=call_id, name=call["name"], args=call["args"])
        self.report.tool_steps.append(step)
        try:
            refusal = await self._approve(call, step)
            if refusal is not None:
                raise ToolCallRefused(refusal)
            step.output = _bounded(clean_value(await self._invoke_tool(call)))
        except Exception as error:
            told = tool_failure(error, tool=step.name, run_id=self.run_id, log=logger)
            step.output, step.error = None, clean_text(told)
        result = events.tool_result(
            run_id=self.run_id, call_id=call_id, name=step.name, output=step.output, error=step.error
        )
        self.stream.emit(result)
        content = f"Error: {step.error}" if step.error is not None else json.dumps(step.output, allow_nan=False)
        return ToolMessage(content=content, tool_call_id=call["id"], name=step.name)

    def _approval_needed(self, call: dict[str, Any]) -> bool:
        if self._needs_approval is None or call["name"] not in self._tools or isinstance(call["args"], str):
            return False
        try:
            return bool(self._needs_approval(call["name"], call["args"]))
        except Exception:
            logger.exception("the approval rule of %s failed; asking for approval", call["name"])
            return True

    async def _approve(self, call: dict[str, Any], step: ToolStep) -> str | None:
        """Ask for approval if the call needs it: None to go ahead, else what to tell the model."""
        if not self._approval_needed(call):
            return None
        request = ApprovalRequest(approval_id=uuid4().hex, call_id=step.call_id, name=step.name, args=call["args"])
        self.stream.emit(
            events.approval_requested(
                run_id=self.run_id,
                approval_id=request.approval_id,
                call_id=request.call_id,
                name=request.name,
                args=request.args,
            )
        )
        outcome = ApprovalOutcome(decision="expired")
        try:
            with self._deadline_paused():
                outcome = await self._approvals.decide(request)
        finally:  # also when the run is stopped while it waits
            step.approval = {"approval_id": request.approval_id, "decision": outcome.decision, "by": outcome.by}
            self.stream.emit(
                events.approval_resolved(
                    run_id=self.run_id, approval_id=request.approval_id, decision=outcome.decision, by=outcome.by
                )
            )
        return outcome.refusal

    @contextlib.contextmanager
    def _deadline_paused(self) -> Iterator[None]:
        """The run's deadline stands still while it waits for people (however many calls wait at once)."""
        loop = asyncio.get_running_loop()
        deadline = self._deadline
        if self._waiting == 0 and deadline is not None and deadline.when() is not None:
            self._remaining = max(0.0, deadline.when() - loop.time())  # type: ignore[operator]
            deadline.reschedule(None)
        self._waiting += 1
        try:
            yield
        finally:
            self._waiting -= 1
            if self._waiting == 0 and deadline is not None and self._remaining is not None:
                deadline.reschedule(loop.time() + self._remaining)
                self._remaining = None

    async def _invoke_tool(self, call: dict[str, Any]) -> Any:
        tool = self._tools.get(call["name"])
        if tool is None:
            names = ", ".join(sorted(self._tools))
            raise ToolCallRefused(UNKNOWN_TOOL.format(name=call["name"], names=names))
        if isinstance(call["args"], str):
            raise ToolCallRefused(INVALID_JSON.format(error=call["args_error"]))
        # A sync tool's thread cannot be stopped: past the timeout the run goes on without its result.
        limit = asyncio.timeout(self._tool_timeout)
        try:
            async with limit:
                return await tool.ainvoke(call["args"])
        except TimeoutError:
            if limit.expired():
                raise ToolCallRefused(TOOL_TIMED_OUT.format(seconds=self._tool_timeout)) from None
            raise


def _bounded(output: Any) -> Any:
    """A tool's result as the model and the tabs get it: JSON-safe, and at most TOOL_RESULT_MAX_CHARS.

    Refuses NaN or infinite numbers (`ToolCallRefused`); anything JSON cannot hold becomes its text.
    """
    try:
        text = output if isinstance(output, str) else json.dumps(output, allow_nan=False)
    except TypeError:
        output = text = clean_text(str(output))
    except ValueError as error:
        raise ToolCallRefused(str(error)) from None
    if len(text) <= TOOL_RESULT_MAX_CHARS:
        return output
    return text[:TOOL_RESULT_MAX_CHARS] + RESULT_CUT.format(limit=TOOL_RESULT_MAX_CHARS)


def _calls_of(reply: AIMessageChunk) -> list[dict[str, Any]]:
    """The step's tool calls in index order: `args` a dict, or the raw text when it is not JSON."""
    calls = []
    for position, chunk in enumerate(reply.tool_call_chunks):
        index = chunk.get("index")
        raw = chunk.get("args") or "{}"
        call = {
            "index": index if isinstance(index, int) else position,
            "id": clean_text(chunk.get("id") or f"call_{uuid4().hex[:12]}"),
            "name": clean_text(chunk.get("name") or ""),
        }
        try:
            args = clean_value(json.loads(raw, parse_constant=refuse_constant))
        except ValueError as error:
            call["args"], call["args_error"] = raw, str(error)
        else:
            if isinstance(args, dict):
                call["args"] = args
            else:
                call["args"], call["args_error"] = raw, "expected a JSON object"
        calls.append(call)
    return calls
