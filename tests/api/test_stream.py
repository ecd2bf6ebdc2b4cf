"""Runs over HTTP as server-sent events: the tabs' stream, resumed without gap or duplicate, never stopped."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

from api.errors import DUPLICATE
from api.services import api_token_create
from conversations import protocol
from conversations.models import Conversation, Message
from tests.support.answers import stored, wait_until_answered
from tests.support.api import SseEvent, TokenClient, is_sse_token_with, send_message, sse_reader, stream_url
from tests.support.runs import assert_well_formed

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


def ids_of(events: list[dict]) -> list[str]:
    return [f"{e['run_id']}:{e['seq']}" for e in events]


async def test_the_sse_stream_of_a_run_equals_the_websocket_stream_of_the_same_run(api, tabs, conversation):
    tab = await tabs()

    reader = await sse_reader(await send_message(api, conversation.pk, "What is 10 + 10?"))
    sse: list[SseEvent] = await reader.to_end()
    seen_by_tab = await tab.run_events_until_done()

    assert [e.data for e in sse] == seen_by_tab
    assert_well_formed(seen_by_tab)
    assert [e.event for e in sse] == [e["type"] for e in seen_by_tab]
    assert [e.id for e in sse] == ids_of(seen_by_tab)
    assert seen_by_tab[0]["user_message"]["content"] == "What is 10 + 10?"
    assert [e.data["output"] for e in sse if e.event == "tool_result"] == [20]
    answer = (await wait_until_answered(conversation))[-1]
    assert (answer.status, answer.run_id) == ("completed", seen_by_tab[0]["run_id"])


async def test_resuming_with_last_event_id_mid_run_continues_without_gap_or_duplicate(api, tabs, conversation, paced):
    paced(200)
    tab = await tabs()
    first = await sse_reader(await send_message(api, conversation.pk, "count to 200"))
    cut = await first.until(is_sse_token_with("20,"))
    await first.disconnect()  # the connection drops mid-run

    resumed = await sse_reader(await api.get(stream_url(conversation), headers={"Last-Event-ID": cut.id}))
    rest = await resumed.to_end()

    assert rest and rest[0].data["seq"] == cut.data["seq"] + 1
    full = first.data + [e.data for e in rest]
    assert full == await tab.run_events_until_done()
    assert_well_formed(full)


async def test_a_client_that_disconnects_does_not_stop_the_run_and_leaves_the_group(api, conversation, paced):
    paced(300)
    reader = await sse_reader(await send_message(api, conversation.pk, "count to 100"))
    await reader.until(is_sse_token_with("5,"))
    await reader.disconnect()

    assert not get_channel_layer().groups.get(protocol.group_name(conversation.pk))
    answer = (await wait_until_answered(conversation))[-1]
    assert answer.status == "completed"
    assert "100" in answer.content


async def test_following_the_conversation_joins_the_active_run_from_its_first_event(api, tabs, conversation, paced):
    paced(100)
    tab = await tabs()
    await tab.ask("count to 100")
    await tab.receive_until(lambda f: f.get("type") == "token" and "10," in f["text"])

    late = await sse_reader(await api.get(stream_url(conversation)))
    events = [e.data for e in await late.to_end()]

    await tab.run_events_until_done()
    assert events == [f for f in tab.frames if "seq" in f]
    assert_well_formed(events)


async def test_an_idle_stream_sends_keep_alives_then_follows_the_next_run(api, tabs, conversation, settings):
    settings.API_SSE_KEEPALIVE_SECONDS = 0.05
    waiting = await sse_reader(await api.get(stream_url(conversation)))
    assert await waiting.next_block()
    assert waiting.comments == ["keep-alive"] and waiting.events == []

    tab = await tabs()
    await tab.ask("What is 10 + 10?")
    events = [e.data for e in await waiting.to_end()]

    assert events == await tab.run_events_until_done()


async def test_a_last_event_id_of_a_run_sent_in_full_waits_for_the_next_run(api, tabs, conversation, settings):
    settings.API_SSE_KEEPALIVE_SECONDS = 0.05
    done = (await (await sse_reader(await send_message(api, conversation.pk, "What is 1 + 1?"))).to_end())[-1]
    assert done.event == "done"
    await wait_until_answered(conversation)

    waiting = await sse_reader(await api.get(stream_url(conversation), headers={"Last-Event-ID": done.id}))
    assert await waiting.next_block() and waiting.comments == ["keep-alive"]
    tab = await tabs()
    await tab.ask("What is 2 + 2?", client_id="c2")
    events = [e.data for e in await waiting.to_end()]

    assert events[0]["seq"] == 1 and events[0]["run_id"] != done.data["run_id"]
    assert events == await tab.run_events_until_done()


async def test_a_last_event_id_of_another_users_run_resumes_nothing_of_it(api, conversation, bob, settings):
    settings.API_SSE_KEEPALIVE_SECONDS = 0.05
    bobs = await database_sync_to_async(Conversation.objects.create)(owner=bob)
    bob_token = await database_sync_to_async(api_token_create)(user=bob, name="bob")
    bob_api = TokenClient(bob_token.secret)
    first = await (await sse_reader(await send_message(bob_api, bobs.pk, "What is 3 + 3?"))).to_end()

    snooping = await sse_reader(
        await api.get(stream_url(conversation), headers={"Last-Event-ID": f"{first[0].data['run_id']}:1"})
    )
    assert await snooping.next_block()
    assert snooping.events == [] and snooping.comments == ["keep-alive"]
    await snooping.disconnect()


async def test_events_the_channel_layer_drops_are_filled_from_the_log(api, conversation, settings):
    small = {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 2}}
    settings.CHANNEL_LAYERS = {"default": small}
    settings.API_SSE_KEEPALIVE_SECONDS = 0.05
    reader = await sse_reader(await send_message(api, conversation.pk, "What is (3 + 4) * 2 ^ 3?"))
    await reader.until(lambda e: e.event == "run_started")
    await wait_until_answered(conversation)  # meanwhile the reader's channel overflows

    events = [e.data for e in await reader.to_end()]

    assert_well_formed(events)
    assert [e["output"] for e in events if e["type"] == "tool_result"] == [7, 8, 56]


async def test_a_resend_while_its_answer_streams_follows_the_same_run(api, conversation, paced):
    paced(100)
    first = await sse_reader(await send_message(api, conversation.pk, "count to 100", client_id="same"))
    await first.until(is_sse_token_with("3,"))

    again = await sse_reader(await send_message(api, conversation.pk, "count to 100", client_id="same"))
    resent = [e.data for e in await again.to_end()]
    original = [e.data for e in await first.to_end()]

    assert resent == original
    assert_well_formed(resent)
    assert len(await stored(Message, conversation=conversation, role="user")) == 1


async def test_a_resend_of_an_answered_message_is_a_duplicate(api, conversation):
    await (await sse_reader(await send_message(api, conversation.pk, "What is 10 + 10?", client_id="once"))).to_end()

    response = await send_message(api, conversation.pk, "What is 10 + 10?", client_id="once")

    assert response.status_code == 409
    assert response.json() == {
        "error": {"code": "duplicate", "message": DUPLICATE.format(conversation_id=conversation.pk)}
    }
    assert len(await stored(Message, conversation=conversation)) == 2
