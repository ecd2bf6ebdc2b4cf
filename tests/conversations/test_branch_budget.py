"""`branch` frames cost every tab a snapshot: they share `sync`'s budget, its interval and its 4429 close."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async

from conversations import consumers, protocol
from conversations.models import Conversation, Message
from tests.messages import message_append

pytestmark = pytest.mark.django_db(transaction=True)


def two_versions(conversation: Conversation) -> tuple[Message, Message]:
    """A question with two answers (the second on screen)."""
    question = message_append(conversation, role="user", content="What is 2 + 2?", client_id="q1")
    first = message_append(conversation, role="assistant", content="4")
    second = Message.objects.create(conversation=conversation, parent=question, role="assistant", content="Four")
    Conversation.objects.filter(pk=conversation.pk).update(leaf=second)
    return first, second


@pytest.fixture
def versions(conversation) -> tuple[Message, Message]:
    return two_versions(conversation)


@pytest.fixture
def chosen(monkeypatch) -> list[object]:
    """The versions the consumer chose, in order (the frames it served)."""
    served: list[object] = []
    choose = consumers.choose_version

    async def counting(*, conversation, message_id):
        served.append(message_id)
        return await choose(conversation=conversation, message_id=message_id)

    monkeypatch.setattr(consumers, "choose_version", counting)
    return served


async def close_code(tab) -> int | None:
    """Read the socket's output up to its close: the close code, or None when it stays open and quiet
    for a second (`receive_nothing`: a `receive_output` that times out would end the application)."""
    while not await tab.communicator.receive_nothing(timeout=1):
        output = await tab.communicator.receive_output()
        if output["type"] == "websocket.close":
            return output["code"]
    return None


@pytest.mark.asyncio
async def test_a_flood_of_branch_frames_is_closed_with_4429(tabs, settings, versions, chosen):
    settings.SYNC_MAX_PER_MINUTE = 10
    first, second = versions
    tab = await tabs()

    for n in range(20):
        await tab.send({"type": "branch", "message_id": (first, second)[n % 2].pk})

    assert await close_code(tab) == protocol.CLOSE_TOO_MANY_SYNCS
    # The frames within the budget came within an interval or two: they shared a turn, if any came.
    assert len(chosen) <= 1


@pytest.mark.asyncio
async def test_sync_and_branch_frames_count_against_one_budget(tabs, settings, versions):
    settings.SYNC_MAX_PER_MINUTE = 10
    first, _ = versions
    tab = await tabs()

    for _ in range(5):
        await tab.send({"type": "sync"})
        await tab.send({"type": "branch", "message_id": first.pk})
    assert await close_code(tab) is None  # ten: within the budget

    await tab.send({"type": "branch", "message_id": first.pk})
    assert await close_code(tab) == protocol.CLOSE_TOO_MANY_SYNCS


@pytest.mark.asyncio
async def test_a_sync_flood_closes_a_socket_that_also_chose_versions(tabs, settings, versions):
    settings.SYNC_MAX_PER_MINUTE = 10
    first, _ = versions
    tab = await tabs()

    for _ in range(9):
        await tab.send({"type": "branch", "message_id": first.pk})
    await tab.send({"type": "sync"})
    await tab.send({"type": "sync"})

    assert await close_code(tab) == protocol.CLOSE_TOO_MANY_SYNCS


@pytest.mark.asyncio
async def test_versions_chosen_within_one_interval_show_the_last(tabs, settings, versions, chosen, conversation):
    settings.SYNC_MIN_INTERVAL_SECONDS = 0.5
    first, second = versions
    tab = await tabs()

    # Within the interval of the connect's snapshot: the three share one turn, the last one wins.
    for message in (first, second, first):
        await tab.send({"type": "branch", "message_id": message.pk})
    snapshot = (await tab.receive_until(lambda f: f["type"] == "snapshot"))[-1]
    assert await close_code(tab) is None  # and nothing more comes

    assert chosen == [first.pk]
    assert snapshot["messages"][-1]["id"] == first.pk
    await conversation.arefresh_from_db()
    assert conversation.leaf_id == first.pk


@pytest.mark.asyncio
async def test_a_refused_branch_in_a_shared_turn_still_tells_its_tab(tabs, settings, versions):
    settings.SYNC_MIN_INTERVAL_SECONDS = 0.3
    tab = await tabs()

    await tab.send({"type": "branch", "message_id": "not an id"})
    error = (await tab.receive_until(lambda f: f["type"] == "error"))[-1]

    assert error["code"] == protocol.BAD_REQUEST


@pytest.mark.asyncio
async def test_regenerates_are_held_by_the_send_rate_limit_not_this_budget(tabs, settings, versions):
    settings.SYNC_MAX_PER_MINUTE = 2
    settings.RATE_LIMIT_MESSAGES_PER_MINUTE = 3  # the two versions count: one more answer may start
    tab = await tabs()

    await tab.send({"type": "regenerate", "client_id": "r1"})
    await tab.run_events_until_done()
    for n in range(3):
        await tab.send({"type": "regenerate", "client_id": f"r{n + 2}"})
    errors = [f for f in await tab.receive_until(lambda f: f.get("client_id") == "r4") if f["type"] == "error"]

    assert [e["code"] for e in errors] == [protocol.RATE_LIMITED] * 3
    assert await database_sync_to_async(Message.objects.filter(role="assistant").count)() == 3
    assert await close_code(tab) is None  # four regenerates, and the snapshots they cost, within a budget of two
