"""A run whose event log lost its first events (Redis restarted, evicted the log, failed over): a snapshot
still starts with its `run_started`, rebuilt from storage, and the answer stored so far is kept."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
from channels.db import database_sync_to_async

from agent_runtime import events
from conversations.event_log import KEY_PREFIX, get_event_log
from conversations.models import Conversation, Message
from conversations.process import process_state
from conversations.runs import conversation_snapshot
from tests.messages import message_append
from tests.services import require_redis
from tests.support.answers import stored_messages, wait_until_answered
from tests.support.tabs import is_token_with

pytestmark = pytest.mark.django_db(transaction=True)

RUN_ID = "run-lost-head"
STORED_ANSWER = "Two and two make 4: the answer is 4"
STORED_STEP = {"call_id": "c1", "name": "add", "args": {"x": 2, "y": 2}, "output": 4}


def generating_answer(conversation: Conversation) -> tuple[Message, Message]:
    """A question and its answer being written, as the heartbeat stored it: some text and one tool call."""
    question = message_append(conversation, role="user", content="What is 2 + 2?", client_id="q1")
    answer = message_append(
        conversation,
        role="assistant",
        status=Message.Status.GENERATING,
        run_id=RUN_ID,
        model="offline-demo",
        content=STORED_ANSWER,
        tool_steps=[STORED_STEP],
    )
    return question, answer


async def log(*logged: events.Event) -> None:
    for event in logged:
        await get_event_log().append(RUN_ID, event, events.encode(event))


@pytest.mark.asyncio
async def test_a_snapshot_of_a_log_that_lost_its_head_starts_with_the_run_started_rebuilt(conversation):
    question, _ = await database_sync_to_async(generating_answer)(conversation)
    # The log lost seq 1 to 88 (with them the run_started): it holds what came after.
    await log(
        events.token(run_id=RUN_ID, text=" and more", seq=89),
        events.token(run_id=RUN_ID, text=" text", seq=90),
    )

    snapshot = await conversation_snapshot(conversation)

    active = snapshot["active_run"]
    first = active["events"][0]
    assert first["type"] == events.RUN_STARTED
    assert (first["run_id"], first["seq"], first["model"]) == (RUN_ID, 1, "offline-demo")
    assert first["user_message"] == {"id": question.pk, "content": "What is 2 + 2?", "client_id": "q1"}
    assert active["run_id"] == RUN_ID and active["head_lost"] is True
    assert [e["seq"] for e in active["events"]] == [1, 89, 90]
    for event in active["events"]:
        events.validate_event(event)
    # The tab starts from the stored answer: it is in the snapshot's messages.
    assert snapshot["messages"][-1]["content"] == STORED_ANSWER
    assert snapshot["messages"][-1]["tool_steps"] == [STORED_STEP]


@pytest.mark.asyncio
async def test_a_lost_log_of_an_answer_still_being_written_gives_its_start(conversation):
    question, _ = await database_sync_to_async(generating_answer)(conversation)

    snapshot = await conversation_snapshot(conversation)

    (first,) = snapshot["active_run"]["events"]
    assert (first["type"], first["run_id"], first["user_message"]["id"]) == (events.RUN_STARTED, RUN_ID, question.pk)
    assert snapshot["active_run"]["head_lost"] is True


@pytest.mark.asyncio
async def test_what_the_stored_answer_holds_is_not_sent_again(conversation):
    await database_sync_to_async(generating_answer)(conversation)
    await log(
        events.tool_args(run_id=RUN_ID, call_id="c1", delta='"y": 2}', seq=40),
        events.tool_result(run_id=RUN_ID, call_id="c1", name="add", output=4, seq=41),
        events.token(run_id=RUN_ID, text="Two and two make 4: the ", seq=42),  # all of it stored
        events.token(run_id=RUN_ID, text="answer is 4, as", seq=43),  # stored up to the comma
        events.tool_start(run_id=RUN_ID, call_id="c2", name="multiply", seq=44),
        events.token(run_id=RUN_ID, text=" expected", seq=45),
    )

    resumed = (await conversation_snapshot(conversation))["active_run"]["events"]

    assert [e["seq"] for e in resumed] == [1, 41, 43, 44, 45]
    assert [e["text"] for e in resumed if e["type"] == events.TOKEN] == [", as", " expected"]
    # What the tab shows: the stored answer, then what the log adds, each piece once.
    assert STORED_ANSWER + "".join(e["text"] for e in resumed if e["type"] == events.TOKEN) == (
        "Two and two make 4: the answer is 4, as expected"
    )


@pytest.mark.asyncio
async def test_text_the_stored_answer_is_ahead_with_is_not_sent_again(conversation):
    await database_sync_to_async(generating_answer)(conversation)
    # The heartbeat stored text still waiting to be relayed: the log is behind it.
    await log(events.token(run_id=RUN_ID, text="make 4: the ans", seq=30))

    resumed = (await conversation_snapshot(conversation))["active_run"]["events"]

    assert [e["type"] for e in resumed] == [events.RUN_STARTED]


@pytest.mark.asyncio
async def test_a_whole_log_is_sent_as_it_is(conversation):
    await database_sync_to_async(generating_answer)(conversation)
    whole = [
        events.run_started(run_id=RUN_ID, model="offline-demo", seq=1),
        events.token(run_id=RUN_ID, text="x", seq=2),
    ]
    await log(*whole)

    active = (await conversation_snapshot(conversation))["active_run"]

    assert active == {"run_id": RUN_ID, "events": whole}


@pytest.mark.asyncio
async def test_a_redis_log_lost_mid_run_gives_a_late_tab_the_start_and_the_answer_so_far(
    tabs, conversation, settings, paced
):
    settings.REDIS_URL = require_redis()
    settings.RUN_HEARTBEAT_SECONDS = 0.05
    paced(100)
    tab = await tabs()
    await tab.ask("count to 500", client_id="count")
    await tab.receive_until(is_token_with("20,"))
    (active,) = process_state().runs.values()
    redis = aioredis.Redis.from_url(settings.REDIS_URL)
    try:
        await redis.delete(KEY_PREFIX + active.run_id)  # as a Redis restart without persistence does
    finally:
        await redis.aclose()
    await tab.receive_until(is_token_with("40,"))
    await asyncio.sleep(0.2)  # a few heartbeats since

    late = await tabs()
    active.stop()
    await wait_until_answered(conversation)

    started, *rest = late.snapshot["active_run"]["events"]
    assert started["type"] == events.RUN_STARTED and started["run_id"] == active.run_id
    assert started["user_message"]["content"] == "count to 500"
    assert started["user_message"]["client_id"] == "count"
    assert late.snapshot["active_run"]["head_lost"] is True
    assert rest and rest[0]["seq"] > 2
    shown = late.snapshot["messages"][-1]["content"] + "".join(e["text"] for e in rest if e["type"] == events.TOKEN)
    assert "40," in shown
    stored = (await stored_messages(conversation))[-1].content
    assert stored.startswith(shown)


@pytest.mark.asyncio
async def test_a_log_with_a_gap_in_the_middle_is_served_from_the_gap_on_over_the_stored_answer(conversation):
    await database_sync_to_async(generating_answer)(conversation)
    # A failover lost seq 3 to 88 in the middle: the head and a tail survive.
    await log(
        events.run_started(run_id=RUN_ID, model="offline-demo", seq=1),
        events.token(run_id=RUN_ID, text="Two", seq=2),
        events.token(run_id=RUN_ID, text=" and more", seq=89),
    )

    active = (await conversation_snapshot(conversation))["active_run"]

    assert active["head_lost"] is True
    assert [e["seq"] for e in active["events"]] == [1, 89]  # the start rebuilt, then the tail: no hole shown
    assert active["events"][1]["text"] == " and more"


@pytest.mark.asyncio
async def test_a_stored_answer_whose_log_lost_its_done_is_shown_stored_not_streaming(conversation):
    _, answer = await database_sync_to_async(generating_answer)(conversation)
    await log(events.run_started(run_id=RUN_ID, model="offline-demo", seq=1))  # `done` never reached the log
    await database_sync_to_async(Message.objects.filter(pk=answer.pk).update)(status=Message.Status.COMPLETED)

    snapshot = await conversation_snapshot(conversation)

    assert snapshot["active_run"] is None
    assert snapshot["messages"][-1]["status"] == "completed"
