"""The watchdog: a run whose process stopped beating is `interrupted`, its partial answer kept, tabs told."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from channels.db import database_sync_to_async

from agent_runtime import events
from conversations.event_log import get_event_log
from conversations.models import Message
from conversations.services import RUN_INTERRUPTED
from conversations.watchdog import partial_answer, sweep_interrupted_runs
from tests.support.runs import assert_well_formed

pytestmark = pytest.mark.django_db(transaction=True)

LOGGED = [
    events.run_started(run_id="dead", model="m", seq=1),
    events.tool_start(run_id="dead", call_id="c1", name="add", seq=2),
    events.tool_args(run_id="dead", call_id="c1", delta='{"x": 1, ', seq=3),
    events.tool_args(run_id="dead", call_id="c1", delta='"y": 2}', seq=4),
    events.step_end(run_id="dead", seq=5),
    events.tool_result(run_id="dead", call_id="c1", name="add", output=3, seq=6),
    events.token(run_id="dead", text="1 + 2 ", seq=7),
]


def test_the_partial_answer_is_rebuilt_from_the_events():
    content, steps = partial_answer(LOGGED)

    assert content == "1 + 2 "
    assert steps == [{"call_id": "c1", "name": "add", "args": {"x": 1, "y": 2}, "output": 3}]


async def _dead_run(conversation, heartbeat_age: float) -> Message:
    beat = datetime.now(UTC) - timedelta(seconds=heartbeat_age)
    create = database_sync_to_async(Message.objects.create)
    await create(conversation=conversation, role="user", content="What is 1 + 2?", client_id="c1")
    return await create(
        conversation=conversation, role="assistant", status="generating", run_id="dead", heartbeat=beat, started=beat
    )


@pytest.mark.asyncio
async def test_a_silent_run_is_interrupted_with_its_partial_answer_and_tabs_get_error_then_done(
    tabs, conversation, settings
):
    message = await _dead_run(conversation, heartbeat_age=settings.RUN_STALE_SECONDS + 5)
    for event in LOGGED:
        await get_event_log().append("dead", event, events.encode(event))
    tab = await tabs()

    assert await sweep_interrupted_runs() == 1

    seen = await tab.run_events_until_done()
    assert [e["type"] for e in seen] == ["error", "done"]
    assert_well_formed([*LOGGED, *seen])
    await database_sync_to_async(message.refresh_from_db)()
    assert (message.status, message.error, message.content) == ("interrupted", RUN_INTERRUPTED, "1 + 2 ")
    assert message.tool_steps[0]["output"] == 3
    assert await sweep_interrupted_runs() == 0  # announced once


@pytest.mark.asyncio
async def test_a_run_that_still_beats_is_left_alone(conversation):
    message = await _dead_run(conversation, heartbeat_age=1)

    assert await sweep_interrupted_runs() == 0
    await database_sync_to_async(message.refresh_from_db)()
    assert message.status == "generating"


HEARTBEAT_TEXT = "1, 2, 3, ... 60, "
TAIL_AFTER_LOSS = [  # what a log begun again mid-run holds (Redis lost the stream, appends went on)
    events.token(run_id="dead", text="61, 62, ", seq=89),
    events.token(run_id="dead", text="63, ", seq=90),
]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("logged", "stored"),
    [
        (TAIL_AFTER_LOSS, HEARTBEAT_TEXT),  # a tail: never over the heartbeat's text
        ([], HEARTBEAT_TEXT),  # no log at all
        ([LOGGED[0], events.token(run_id="dead", text="1, 2", seq=2)], HEARTBEAT_TEXT),  # whole but shorter
        ([LOGGED[0], events.token(run_id="dead", text="other text", seq=2)], HEARTBEAT_TEXT),  # disagrees
        ([*LOGGED[:6], events.token(run_id="dead", text=HEARTBEAT_TEXT + "61, ", seq=7)], HEARTBEAT_TEXT + "61, "),
    ],
    ids=["tail-only", "no-log", "shorter", "disagrees", "extends"],
)
async def test_the_sweep_never_stores_less_than_the_heartbeat_did(conversation, settings, logged, stored):
    message = await _dead_run(conversation, heartbeat_age=settings.RUN_STALE_SECONDS + 5)
    steps = [{"call_id": "c1", "name": "add", "args": {"x": 1, "y": 2}, "output": 3}]
    await database_sync_to_async(Message.objects.filter(pk=message.pk).update)(content=HEARTBEAT_TEXT, tool_steps=steps)
    for event in logged:
        await get_event_log().append("dead", event, events.encode(event))

    assert await sweep_interrupted_runs() == 1

    await database_sync_to_async(message.refresh_from_db)()
    assert (message.status, message.content) == ("interrupted", stored)
    assert message.tool_steps == steps
