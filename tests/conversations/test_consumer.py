"""The conversation socket: one live stream for every tab, stop, busy, resends and bad frames."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async

from conversations.consumers import BAD_JSON, UNKNOWN_FRAME
from conversations.models import Conversation
from conversations.sending import BAD_SEND, RUN_BUSY, TOO_LONG
from tests.support.answers import stored_messages, wait_until_answered
from tests.support.runs import assert_well_formed
from tests.support.tabs import is_token_with, open_tab

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


async def test_two_tabs_see_the_same_run_and_what_is_stored_matches(tabs, conversation):
    first, second = await tabs(), await tabs()

    await first.ask("What is 10 + 10?")
    seen_first = await first.run_events_until_done()
    seen_second = await second.run_events_until_done()

    assert seen_first == seen_second
    assert_well_formed(seen_first)
    assert seen_first[0]["user_message"]["content"] == "What is 10 + 10?"
    final = next(e for e in seen_first if e["type"] == "final")
    user, assistant = await stored_messages(conversation)
    assert (user.role, user.content, user.client_id) == ("user", "What is 10 + 10?", "c1")
    assert seen_first[0]["user_message"]["id"] == user.pk
    assert (assistant.status, assistant.content) == ("completed", final["content"])
    assert assistant.run_id == seen_first[0]["run_id"]
    results = [e for e in seen_first if e["type"] == "tool_result"]
    assert assistant.tool_steps == [
        {"call_id": e["call_id"], "name": e["name"], "args": {"x": 10, "y": 10}, "output": e["output"]} for e in results
    ]
    assert assistant.usage == final["usage"]
    assert assistant.finished is not None


async def test_a_tab_joining_mid_run_gets_snapshot_plus_live_equal_to_the_full_stream(tabs, paced):
    paced(300)
    first = await tabs()
    await first.ask("count to 150")
    await first.receive_until(is_token_with("20,"))

    late = await tabs()
    active = late.snapshot["active_run"]
    assert active is not None and active["events"]
    assert late.snapshot["messages"][-1]["status"] == "generating"
    live = await late.run_events_until_done()
    await first.run_events_until_done()
    full = [f for f in first.frames if "seq" in f]

    replayed = active["events"] + [e for e in live if e["seq"] > active["events"][-1]["seq"]]
    assert replayed == full
    assert_well_formed(full)


async def test_the_run_goes_on_when_the_tab_that_asked_closes(tabs, conversation, paced):
    paced(400)
    asker, watcher = await tabs(), await tabs()
    await asker.ask("count to 60")
    await asker.receive_until(is_token_with("5,"))
    await asker.close()

    seen = await watcher.run_events_until_done()
    assert_well_formed(seen)
    assert seen[-1]["status"] == "completed"
    messages = await wait_until_answered(conversation)
    assert messages[-1].content.endswith("59, 60.")


async def test_stop_from_another_tab_cancels_and_keeps_the_partial_answer(tabs, conversation, paced):
    paced(200)
    asker, other = await tabs(), await tabs()
    await asker.ask("count to 500")
    await other.receive_until(is_token_with("5,"))
    await other.send({"type": "stop"})

    seen_asker = await asker.run_events_until_done()
    seen_other = await other.run_events_until_done()
    assert seen_asker[-1] == seen_other[-1]
    assert seen_asker[-1]["status"] == "cancelled"
    assert_well_formed(seen_asker)
    assistant = (await wait_until_answered(conversation))[-1]
    shown = "".join(e["text"] for e in seen_asker if e["type"] == "token")
    assert assistant.status == "cancelled"
    assert assistant.content == shown
    assert assistant.content.startswith("1, 2, 3, 4, 5,")
    assert not assistant.content.endswith("500.")


async def test_a_second_send_while_streaming_is_busy_for_the_sender_only(tabs, conversation, paced):
    paced(300)
    asker, other = await tabs(), await tabs()
    await asker.ask("count to 100")
    await asker.receive_until(is_token_with("3,"))
    await other.ask("What is 1 + 1?", client_id="c2")

    frames = await other.receive_until(lambda f: f.get("type") == "error" and "seq" not in f)
    assert frames[-1] == {"type": "error", "code": "busy", "message": RUN_BUSY, "client_id": "c2"}
    await asker.run_events_until_done()
    assert not any(f.get("code") == "busy" for f in asker.frames)
    messages = await wait_until_answered(conversation)
    assert [m.content for m in messages if m.role == "user"] == ["count to 100"]


async def test_the_same_client_id_twice_stores_one_message_and_starts_one_run(tabs, conversation):
    tab = await tabs()
    await tab.ask("What is 2 + 2?", client_id="same")
    await tab.run_events_until_done()
    await tab.ask("What is 2 + 2?", client_id="same")
    await tab.send({"type": "sync"})
    snapshot = await tab.receive_until(lambda f: f["type"] == "snapshot")

    messages = await stored_messages(conversation)
    assert [(m.role, m.client_id) for m in messages] == [("user", "same"), ("assistant", None)]
    assert [f for f in snapshot if f["type"] == "run_started"] == []


async def test_history_is_per_conversation(tabs, alice, conversation):
    tab = await tabs()
    await tab.ask("What is 3 + 3?")
    await tab.run_events_until_done()
    other = await database_sync_to_async(Conversation.objects.create)(owner=alice)
    from conversations.selectors import history_for_agent

    messages = await stored_messages(conversation)
    last = messages[-1].pk
    history = await database_sync_to_async(history_for_agent)(conversation=other, parent_id=last, limit=20)
    mine = await database_sync_to_async(history_for_agent)(conversation=conversation, parent_id=last, limit=20)
    assert history == []
    assert mine[0].content == "What is 3 + 3?"


@pytest.mark.parametrize(
    ("frame", "code", "message"),
    [
        ("not json", "bad_request", BAD_JSON),
        ("[1, 2]", "bad_request", BAD_JSON),
        ({"type": "dance"}, "bad_request", UNKNOWN_FRAME),
        ({"type": "send", "content": 42, "client_id": "x"}, "bad_request", BAD_SEND),
        ({"type": "send", "content": "   ", "client_id": "x"}, "bad_request", BAD_SEND),
        ({"type": "send", "content": "hi"}, "bad_request", BAD_SEND),
        ({"type": "send", "content": "hi", "client_id": "x" * 65}, "bad_request", BAD_SEND),
        ({"type": "send", "content": "x" * 8001, "client_id": "x"}, "too_long", TOO_LONG.format(limit=8000)),
    ],
)
async def test_bad_frames_get_a_clear_error_store_nothing_and_keep_the_socket(tabs, conversation, frame, code, message):
    tab = await tabs()
    await tab.send(frame)
    error = await tab.receive()
    assert {k: error[k] for k in ("type", "code", "message")} == {"type": "error", "code": code, "message": message}

    await tab.send({"type": "sync"})
    assert (await tab.receive())["type"] == "snapshot"
    assert await stored_messages(conversation) == []


async def test_strangers_are_refused_and_nothing_is_stored(conversation, bob, alice):
    for user, origin in [(None, b"http://localhost"), (bob, b"http://localhost"), (alice, b"http://evil.example")]:
        _, connected, _ = await open_tab(conversation.pk, user, origin=origin)
        assert not connected, (user, origin)
    _, connected, _ = await open_tab(conversation.pk, alice, origin=None)
    assert not connected
    _, connected, _ = await open_tab(987654, alice)
    assert not connected
    assert await stored_messages(conversation) == []
