"""Sync tools' own threads, and tools that fail or take too long: bounded, given up on, told safely."""

from __future__ import annotations

import asyncio
import json
import logging
import threading

import pytest
from langchain_core.tools import ToolException

from agent_runtime import events
from agent_runtime.assistants import Assistant, tool
from agent_runtime.errors import TOOL_FAILED, TOOL_TIMED_OUT, redact
from agent_runtime.executor import RUN_TIMED_OUT, AgentRun
from agent_runtime.llm import build_chat_model
from agent_runtime.tool_threads import ToolThreads
from tests.fake_openai import StreamResponse, content_chunks, tool_calls_chunks
from tests.support.runs import collect, model_at
from tests.support.waits import eventually

pytestmark = pytest.mark.asyncio

SETTLE = 10
"""Seconds a test waits at most for what should take a fraction of one (a bound, not a measure)."""


@pytest.fixture
def threads():
    pool = ToolThreads(size=2)
    yield pool
    pool.shutdown()


@pytest.fixture
def gate():
    """What a blocked sync tool waits for; opened at the end of the test whatever happens."""
    opened = threading.Event()
    yield opened
    opened.set()


async def test_a_sync_call_runs_in_a_tool_thread_not_the_callers(threads):
    where = await threads.runner(lambda: threading.current_thread())()

    assert where is not threading.current_thread()
    assert where.name.startswith("tool-")
    assert where.daemon  # a tool that never returns does not hold the process at exit


async def test_at_most_size_threads_run_at_once_and_the_rest_wait_their_turn(threads, gate):
    started: list[int] = []

    def blocked(number: int) -> int:
        started.append(number)
        gate.wait(SETTLE)
        return number

    calls = [asyncio.ensure_future(threads.runner(blocked)(number=n)) for n in range(5)]
    await eventually(lambda: threads.busy == 2)
    await asyncio.sleep(0.1)  # a third thread, if one were wrongly started, would have begun by now

    assert len(started) == 2
    gate.set()
    assert sorted(await asyncio.wait_for(asyncio.gather(*calls), SETTLE)) == [0, 1, 2, 3, 4]


async def test_a_call_given_up_before_its_turn_never_runs(gate):
    pool = ToolThreads(size=1)
    ran: list[str] = []

    def blocked(name: str) -> None:
        ran.append(name)
        gate.wait(SETTLE)

    first = asyncio.ensure_future(pool.runner(blocked)(name="first"))
    await eventually(lambda: pool.busy == 1)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(pool.runner(blocked)(name="second"), 0.1)
    gate.set()
    await first
    await pool.runner(lambda: None)()  # the thread has gone past the queued call by now

    assert ran == ["first"]
    pool.shutdown()


async def test_after_shutdown_nothing_new_starts():
    pool = ToolThreads(size=1)
    pool.shutdown()

    with pytest.raises(RuntimeError):
        await pool.runner(lambda: None)()


# --- through the executor ------------------------------------------------------------------------


class Slow(Assistant):
    """Sync tools that block until the test lets them go, or fail in the ways upstream calls do."""

    instructions = "You use the upstream service."
    gate: threading.Event

    @tool
    def look_up(self) -> str:
        """Ask the upstream service."""
        self.gate.wait(SETTLE)
        return "answered"

    @tool
    def leaky(self) -> str:
        """Fail as an HTTP client does, naming the URL with its key."""
        raise ConnectionError("503 for url 'https://api.example.invalid/v1/orders?api_key=sk_live_SECRET123'")

    @tool
    def own_timeout(self) -> str:
        """Fail with the tool's own time-out (not the run's limit)."""
        raise TimeoutError("upstream read timed out")

    @tool
    def polite(self) -> str:
        """Fail with a message meant for the model."""
        raise ToolException("no order with that number")


def slow_run(fake_openai, gate: threading.Event, threads: ToolThreads, **kwargs) -> AgentRun:
    helper = Slow(user=None, run_sync=threads.runner)
    helper.gate = gate
    return AgentRun(
        llm=build_chat_model(model_at(fake_openai)),
        model_name="m",
        user_input="Look it up",
        tools=helper.local_tools(),
        system_prompt=Slow.system_prompt(),
        **kwargs,
    )


def call_then_answer(fake_openai, name: str) -> None:
    fake_openai.enqueue(
        StreamResponse(tool_calls_chunks([("c1", name, ["{}"])])),
        StreamResponse(content_chunks(["Sorry."])),
    )


async def test_a_tool_past_its_timeout_is_a_tool_error_the_model_sees_and_the_answer_goes_on(
    fake_openai, gate, threads
):
    call_then_answer(fake_openai, "look_up")

    seen = await asyncio.wait_for(collect(slow_run(fake_openai, gate, threads, tool_timeout=0.3)), SETTLE)

    result = next(e for e in seen if e["type"] == events.TOOL_RESULT)
    assert result["error"] == TOOL_TIMED_OUT.format(seconds=0.3)
    assert seen[-1]["status"] == "completed"
    told = [m["content"] for m in fake_openai.requests[1]["messages"] if m["role"] == "tool"]
    assert told == [f"Error: {TOOL_TIMED_OUT.format(seconds=0.3)}"]


async def test_the_run_deadline_holds_while_a_sync_tool_blocks(fake_openai, gate, threads):
    call_then_answer(fake_openai, "look_up")

    seen = await asyncio.wait_for(collect(slow_run(fake_openai, gate, threads, timeout=0.5)), SETTLE)

    error = next(e for e in seen if e["type"] == events.ERROR)
    assert (error["code"], error["message"]) == (events.ERROR_TIMEOUT, RUN_TIMED_OUT.format(seconds=0.5))
    assert seen[-1]["status"] == "error"


async def test_a_faults_text_stays_in_the_log_with_its_secrets_redacted(fake_openai, gate, threads, caplog):
    call_then_answer(fake_openai, "leaky")

    with caplog.at_level(logging.ERROR):
        seen = await collect(slow_run(fake_openai, gate, threads))

    result = next(e for e in seen if e["type"] == events.TOOL_RESULT)
    error_id = result["error"].split("error id ")[1].split(")")[0]
    assert result["error"] == TOOL_FAILED.format(error_id=error_id)
    assert "api.example" not in json.dumps(fake_openai.requests[1]) and "SECRET" not in json.dumps(seen)
    logged = next(r.getMessage() for r in caplog.records if error_id in r.getMessage())
    assert "ConnectionError: 503 for url 'https://api.example.invalid/v1/orders?[redacted]'" in logged
    assert "SECRET" not in caplog.text


async def test_a_tools_own_timeout_is_a_fault_not_the_time_limit(fake_openai, gate, threads):
    call_then_answer(fake_openai, "own_timeout")

    seen = await collect(slow_run(fake_openai, gate, threads))

    error = next(e for e in seen if e["type"] == events.TOOL_RESULT)["error"]
    assert error.startswith("the tool failed (error id ")


async def test_a_message_the_tool_meant_for_the_model_is_passed_on(fake_openai, gate, threads):
    call_then_answer(fake_openai, "polite")

    seen = await collect(slow_run(fake_openai, gate, threads))

    assert next(e for e in seen if e["type"] == events.TOOL_RESULT)["error"] == "no order with that number"


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        ("GET https://h.invalid/a?key=1&b=2 failed", "GET https://h.invalid/a?[redacted] failed"),
        ("postgres://app:hunter2@db.invalid/x", "postgres://[redacted]@db.invalid/x"),
        ("api_key=sk_1 token: abc password='pw'", "api_key=[redacted] token: [redacted] password='[redacted]'"),
        ("Authorization: Bearer abc.def", "Authorization: [redacted]"),
        ("nothing secret at https://h.invalid/a", "nothing secret at https://h.invalid/a"),
    ],
)
async def test_redact_hides_query_strings_user_info_and_secrets(text, redacted):
    assert redact(text) == redacted
