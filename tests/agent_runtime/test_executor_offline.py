"""The streaming executor on the offline demo model."""

from __future__ import annotations

import asyncio

import pytest

from agent_runtime import events
from agent_runtime.executor import MAX_ITERATIONS_REACHED
from agent_runtime.history import HistoryTurn
from agent_runtime.offline_model import NOT_ARITHMETIC, SIMULATED_FAILURE
from tests.support.runs import assert_well_formed, collect, offline_run, types_of

pytestmark = pytest.mark.asyncio


async def test_ten_plus_ten_streams_tool_step_then_answer(no_leaks):
    run = offline_run("What is 10 + 10?")
    seen = await collect(run)

    assert_well_formed(seen)
    kinds = types_of(seen)
    assert kinds[:2] == ["run_started", "tool_start"]
    first_result = kinds.index("tool_result")
    assert set(kinds[2 : first_result - 1]) == {"tool_args"}
    assert kinds[first_result - 1] == "step_end"
    assert set(kinds[first_result + 1 : -2]) == {"token"}
    assert kinds[-2:] == ["final", "done"]
    start = seen[1]
    assert start["name"] == "add"
    args = "".join(e["delta"] for e in seen if e["type"] == "tool_args")
    assert args == '{"x": 10, "y": 10}'
    result = seen[first_result]
    assert (result["call_id"], result["name"], result["output"]) == (start["call_id"], "add", 20)
    final = seen[-2]
    assert "20" in final["content"]
    assert final["tools_used"] == ["add"]
    assert final["usage"]["total_tokens"] > 0
    assert seen[-1]["status"] == "completed"
    assert run.report.status == "completed"
    assert run.report.content == final["content"]
    assert [s.as_dict() for s in run.report.tool_steps] == [
        {"call_id": start["call_id"], "name": "add", "args": {"x": 10, "y": 10}, "output": 20}
    ]


async def test_independent_operations_run_in_parallel_in_one_step(no_leaks):
    seen = await collect(offline_run("(3 + 4) * 2 ^ 3"))

    assert_well_formed(seen)
    kinds = types_of(seen)
    first_step = kinds[: kinds.index("step_end")]
    assert [e["name"] for e in seen[: len(first_step)] if e["type"] == "tool_start"] == [
        "add",
        "exponentiate",
    ]
    results = {e["name"]: e["output"] for e in seen if e["type"] == "tool_result"}
    assert results == {"add": 7, "exponentiate": 8, "multiply": 56}
    assert kinds.count("step_end") == 2
    assert seen[-2]["content"].endswith("= 56.")


@pytest.mark.parametrize(
    ("question", "answer"),
    [("what is 7 times 6 minus 2", "40"), ("2 to the power of 10", "1024"), ("What is (3 + 4) * 2?", "14")],
)
async def test_offline_model_solves_arithmetic_step_by_step(question, answer):
    seen = await collect(offline_run(question))

    assert_well_formed(seen)
    assert seen[-2]["content"].rstrip(".").endswith(answer)


async def test_offline_model_explains_itself_for_anything_else():
    seen = await collect(offline_run("Tell me a story"))

    assert_well_formed(seen)
    assert "tool_start" not in types_of(seen)
    assert seen[-2]["content"] == NOT_ARITHMETIC


async def test_same_input_gives_the_same_stream():
    first = await collect(offline_run("(3 + 4) * 2 ^ 3", run_id="same"))
    second = await collect(offline_run("(3 + 4) * 2 ^ 3", run_id="same"))

    strip = [{k: v for k, v in e.items() if k != "usage"} for e in first]
    assert strip == [{k: v for k, v in e.items() if k != "usage"} for e in second]


async def test_a_failing_model_ends_with_error_then_done_and_keeps_the_partial_answer(no_leaks):
    run = offline_run("please simulate an error")
    seen = await collect(run)

    assert_well_formed(seen)
    assert types_of(seen)[-2:] == ["error", "done"]
    assert seen[-2]["code"] == events.ERROR_MODEL_FAILED
    assert SIMULATED_FAILURE in seen[-2]["message"]
    assert seen[-1]["status"] == "error"
    assert run.report.content == "".join(e["text"] for e in seen if e["type"] == "token")
    assert run.report.content


async def test_max_iterations_ends_the_run_with_an_error():
    run = offline_run("(1 + 2) * (3 + 4) ^ 2 - 5", max_iterations=2)
    seen = await collect(run)

    assert_well_formed(seen)
    assert seen[-2]["code"] == events.ERROR_MAX_ITERATIONS
    assert seen[-2]["message"] == MAX_ITERATIONS_REACHED.format(n=2)
    assert seen[-1]["status"] == "error"


async def test_the_run_deadline_ends_the_run_with_timeout(no_leaks):
    run = offline_run("count to 500", pace=50, timeout=0.2)
    seen = await collect(run)

    assert_well_formed(seen)
    assert seen[-2]["code"] == events.ERROR_TIMEOUT
    assert seen[-1]["status"] == "error"
    assert run.report.content  # the partial answer is kept


async def test_cancel_method_ends_with_done_cancelled_and_partial_answer(no_leaks):
    run = offline_run("count to 500", pace=200)
    seen = []
    async for event in run:
        seen.append(event)
        if sum(e["type"] == "token" for e in seen) == 5:
            run.cancel()

    assert_well_formed(seen)
    assert seen[-1]["status"] == "cancelled"
    assert run.report.status == "cancelled"
    assert run.report.content.startswith("1, 2, 3, 4, 5")


async def test_cancelling_the_iterating_task_still_ends_with_one_done(no_leaks):
    run = offline_run("count to 500", pace=200)
    seen = []
    streaming = asyncio.Event()

    async def consume():
        async for event in run:
            seen.append(event)
            if sum(e["type"] == "token" for e in seen) == 3:
                streaming.set()

    task = asyncio.create_task(consume())
    await streaming.wait()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)

    assert_well_formed(seen)
    assert seen[-1]["status"] == "cancelled"
    assert run.report.status == "cancelled"


async def test_tokens_waiting_in_the_queue_are_merged_not_lost(no_leaks):
    run = offline_run("count to 300")
    seen = []
    async for event in run:
        seen.append(event)
        await asyncio.sleep(0.002)  # a slow reader: tokens pile up meanwhile

    assert_well_formed(seen)
    tokens = [e for e in seen if e["type"] == "token"]
    assert len(tokens) < 300
    assert seen[-2]["content"] == ", ".join(str(n) for n in range(1, 301)) + "."


async def test_history_is_given_to_the_model_and_bounded():
    from langchain_core.messages import AIMessage, HumanMessage

    history = [HistoryTurn("user", f"q{i}") if i % 2 == 0 else HistoryTurn("assistant", f"a{i}") for i in range(30)]
    run = offline_run("What is 1 + 1?", history=history, history_limit=4)
    assert run._history == [
        HumanMessage(content="q26"),
        AIMessage(content="a27"),
        HumanMessage(content="q28"),
        AIMessage(content="a29"),
    ]
    seen = await collect(run)
    assert_well_formed(seen)
