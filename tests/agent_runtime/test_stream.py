"""EventStream: the only place a run's events are numbered and merged."""

from __future__ import annotations

import pytest

from agent_runtime import events
from agent_runtime.stream import EventStream
from agent_runtime.transcript import RunTranscript


@pytest.mark.asyncio
async def test_text_waiting_behind_a_token_is_merged_and_seq_stays_contiguous():
    stream = EventStream()
    stream.emit(events.run_started(run_id="r", model="m"))
    for text in ("a", "b", "c"):
        stream.emit(events.token(run_id="r", text=text))
    stream.emit(events.tool_args(run_id="r", call_id="c1", delta='{"x"'))
    stream.emit(events.tool_args(run_id="r", call_id="c1", delta=": 1}"))
    stream.emit(events.tool_args(run_id="r", call_id="c2", delta="{}"))
    stream.emit(events.done(run_id="r", status="completed"))

    seen = [event async for event in stream]

    for event in seen:
        events.validate_event(event)
    assert [e["seq"] for e in seen] == [1, 2, 3, 4, 5]
    assert [e["type"] for e in seen] == ["run_started", "token", "tool_args", "tool_args", "done"]
    assert seen[1]["text"] == "abc"
    assert (seen[2]["call_id"], seen[2]["delta"]) == ("c1", '{"x": 1}')
    assert seen[3]["call_id"] == "c2"


@pytest.mark.asyncio
async def test_an_event_read_before_the_next_is_emitted_is_not_merged_later():
    stream = EventStream()
    stream.emit(events.token(run_id="r", text="a"))
    first = await stream.next_event()
    stream.emit(events.token(run_id="r", text="b"))
    second = await stream.next_event()

    assert (first["text"], first["seq"], second["text"], second["seq"]) == ("a", 1, "b", 2)


def test_call_ids_are_the_models_own_made_unique_over_the_run():
    transcript = RunTranscript()
    transcript.begin_step(1)
    assert transcript.call_id(0, "call_a") == "call_a"
    assert transcript.call_id(0, "ignored once known") == "call_a"
    assert transcript.call_id(1, None) == "call_1_1"
    transcript.begin_step(2)
    assert transcript.call_id(0, "call_a") == "call_a_"  # a model that reuses ids across steps


USAGE = {"input_tokens": 1, "output_tokens": 1, "total_tokens": 2}


def test_every_constructed_event_matches_its_schema():
    made = [
        events.run_started(run_id="r", model="m", seq=1),
        events.tool_start(run_id="r", call_id="c", name="add", seq=2),
        events.tool_args(run_id="r", call_id="c", delta="{}", seq=3),
        events.step_end(run_id="r", seq=4),
        events.tool_result(run_id="r", call_id="c", name="add", output=2, seq=5),
        events.tool_result(run_id="r", call_id="c", name="add", error="bad", seq=6),
        events.token(run_id="r", text="2", seq=7),
        events.final(
            run_id="r",
            content="2",
            tools_used=["add"],
            usage={"input_tokens": 1, "output_tokens": 1, "total_tokens": 2},
        ),
        events.error(run_id="r", code="timeout", message="late", seq=8),
        events.done(run_id="r", status="error", seq=9),
        events.approval_requested(run_id="r", approval_id="a", call_id="c", name="refund", args={"x": 1}, seq=10),
        events.approval_resolved(run_id="r", approval_id="a", decision="denied", by="alice", seq=11),
    ]
    made[7]["seq"] = 7
    for event in made:
        events.validate_event(event)
    assert {e["type"] for e in made} == set(events.SCHEMAS)
