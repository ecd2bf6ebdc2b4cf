"""Text the database cannot hold, failed stores, sync floods, races and stale sockets: nothing stuck, nothing lost."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from channels.db import database_sync_to_async
from django.db import DatabaseError

from agent_runtime.text import clean_text, unstorable_character
from conversations import protocol, runs, services, watchdog
from conversations.actions import UNSTORABLE_TEXT
from conversations.models import Conversation, Message
from conversations.process import process_state
from conversations.sending import BAD_SEND
from conversations.services import RUN_NOT_STORED, RateLimited, SendLimits, turn_start
from tests.fake_openai import StreamResponse, content_chunks, tool_calls_chunks
from tests.messages import message_append
from tests.support.answers import stored_messages, wait_until_answered
from tests.support.api import TokenClient, send_message
from tests.support.runs import assert_well_formed, model_at
from tests.support.users import make_user
from tests.support.waits import eventually

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize(
    ("frame", "field", "what"),
    [
        ({"content": "bad \ud800 text", "client_id": "c1"}, "content", "a lone surrogate"),
        ({"content": "nul \x00 here", "client_id": "c1"}, "content", "a NUL character"),
    ],
    ids=["surrogate", "nul"],
)
@pytest.mark.asyncio
async def test_text_that_cannot_be_stored_is_refused_naming_the_field(tabs, conversation, frame, field, what):
    tab = await tabs()
    await tab.send({"type": "send", **frame})
    error = (await tab.receive_until(lambda f: f["type"] == "error"))[-1]

    assert (error["code"], error["message"]) == (protocol.BAD_REQUEST, UNSTORABLE_TEXT.format(field=field, what=what))
    await tab.ask("What is 1 + 1?", client_id="fine")
    assert (await tab.run_events_until_done())[-1]["status"] == "completed"


@pytest.mark.parametrize("client_id", ["\ud800", "a b", "x" * 65, "<script>", "é"])
@pytest.mark.asyncio
async def test_a_client_id_outside_the_safe_alphabet_is_refused(tabs, conversation, client_id):
    tab = await tabs()
    await tab.ask("What is 1 + 1?", client_id=client_id)
    error = (await tab.receive_until(lambda f: f["type"] == "error"))[-1]

    assert (error["code"], error["message"]) == (protocol.BAD_REQUEST, BAD_SEND)
    assert await stored_messages(conversation) == []


@pytest.mark.asyncio
async def test_the_api_refuses_unstorable_text_as_json_not_an_html_500(alice_token, conversation):
    response = await send_message(TokenClient(alice_token), conversation.pk, "nul \x00 and \ud800")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == protocol.BAD_REQUEST
    assert "'content'" in response.json()["error"]["message"]


def test_the_cleaner_keeps_ordinary_text_and_mends_the_rest():
    assert clean_text("plain, ünïcode, 😀") == "plain, ünïcode, 😀"
    assert clean_text("a\x00b\ud800c") == "ab\ufffdc"
    assert unstorable_character(clean_text("x\udc00\x00")) is None


@pytest.mark.asyncio
async def test_unstorable_model_output_is_cleaned_and_what_tabs_saw_is_what_is_stored(
    tabs, conversation, settings, fake_openai
):
    settings.AGENT_MODEL = model_at(fake_openai)
    fake_openai.enqueue(
        StreamResponse(tool_calls_chunks([("c1", "add", ['{"x": NaN, "y": 1}'])])),
        StreamResponse(tool_calls_chunks([("c2", "add", ['{"x": "\\u0000", "y": 1}'])])),
        StreamResponse(content_chunks(["Echo: a\x00b ", "c\ud800d ", "\udc00e."])),
        StreamResponse(content_chunks(["Next ", "one."])),
    )
    first, second = await tabs(), await tabs()

    await first.ask("Echo the unstorable", client_id="one")
    seen = await first.run_events_until_done()

    assert await second.run_events_until_done() == seen
    assert_well_formed(seen)
    assert seen[-1]["status"] == "completed"
    shown = "".join(e["text"] for e in seen if e["type"] == "token")
    assert shown == "Echo: ab c\ufffdd \ufffde."
    errors = [e["error"] for e in seen if e["type"] == "tool_result"]
    assert "NaN" in errors[0]
    _user, answer = await wait_until_answered(conversation)
    assert (answer.status, answer.content) == ("completed", shown)
    assert answer.tool_steps[1]["args"] == {"x": "", "y": 1}

    await first.ask("And again", client_id="two")
    assert (await first.run_events_until_done())[-1]["status"] == "completed"


@pytest.mark.asyncio
async def test_an_answer_that_cannot_be_stored_ends_error_and_frees_the_conversation(tabs, conversation, monkeypatch):
    def refuse(**kwargs):
        raise DatabaseError("the database refused the row")

    monkeypatch.setattr(runs, "run_finish", refuse)
    monkeypatch.setattr(runs, "PERSIST_ATTEMPTS", 1)
    tab = await tabs()

    await tab.ask("What is 2 + 2?", client_id="one")
    seen = await tab.run_events_until_done()

    assert_well_formed(seen)
    assert [e["type"] for e in seen[-2:]] == ["error", "done"]
    assert (seen[-2]["code"], seen[-2]["message"], seen[-1]["status"]) == ("not_stored", RUN_NOT_STORED, "error")
    _user, answer = await wait_until_answered(conversation)
    assert (answer.status, answer.error) == ("error", RUN_NOT_STORED)
    assert answer.content == "".join(e["text"] for e in seen if e["type"] == "token")
    monkeypatch.undo()
    await tab.ask("What is 3 + 3?", client_id="two")
    assert (await tab.run_events_until_done())[-1]["status"] == "completed"


@pytest.mark.asyncio
async def test_one_bad_row_does_not_stop_the_sweep_recovering_the_others(alice, bob, settings, monkeypatch):
    stale = datetime.now(UTC) - timedelta(seconds=settings.RUN_STALE_SECONDS + 5)

    def dead_run(owner, run_id):
        conversation = Conversation.objects.create(owner=owner)
        return Message.objects.create(
            conversation=conversation, role="assistant", status="generating", run_id=run_id, heartbeat=stale
        )

    bad = await database_sync_to_async(dead_run)(alice, "bad")
    good = await database_sync_to_async(dead_run)(bob, "good")
    real_interrupt = services.run_interrupt

    def interrupt(**kwargs):
        if kwargs["message_id"] == bad.pk:
            raise RuntimeError("a row that cannot be updated")
        return real_interrupt(**kwargs)

    monkeypatch.setattr(watchdog, "run_interrupt", interrupt)

    assert await watchdog.sweep_interrupted_runs() == 1
    await database_sync_to_async(good.refresh_from_db)()
    assert good.status == "interrupted"


@pytest.mark.asyncio
async def test_a_run_a_sweep_took_for_dead_stops_silently_and_the_next_send_is_the_only_run(
    tabs, conversation, paced, settings, monkeypatch
):
    paced(200)
    settings.RUN_HEARTBEAT_SECONDS = 0.1
    tab = await tabs()
    await tab.ask("count to 300", client_id="one")
    await tab.receive_until(lambda f: f.get("type") == "token")
    # Another process's sweep, after this process was silent past the stale limit (a long stall):
    monkeypatch.setattr(watchdog.runs, "active_run_get", lambda _conversation_id: None)
    stalled = datetime.now(UTC) - timedelta(seconds=settings.RUN_STALE_SECONDS + 5)
    await database_sync_to_async(
        lambda: Message.objects.filter(conversation=conversation, status="generating").update(heartbeat=stalled)
    )()
    assert await watchdog.sweep_interrupted_runs() == 1

    seen = await tab.run_events_until_done()
    # Until it learns of the sweep, the stalled run may still send a token or two, with the seqs the
    # sweep's `error` and `done` took: the page keeps the first of each seq; the sweep's are all sent.
    assert any(e.get("code") == "interrupted" for e in seen if e["type"] == "error")
    assert seen[-1]["type"] == "done" and seen[-1]["status"] == "interrupted"
    await eventually(lambda: not process_state().runs, message="the lost run has stopped")
    _user, swept = await wait_until_answered(conversation)
    assert swept.status == "interrupted"  # the late run stored nothing over the sweep's outcome

    await tab.ask("count to 3", client_id="two")
    after = await tab.run_events_until_done()
    assert after[-1]["status"] == "completed"
    kept = await database_sync_to_async(Message.objects.get)(pk=swept.pk)
    assert (kept.status, kept.content) == ("interrupted", swept.content)


@pytest.mark.asyncio
async def test_conversations_per_hour_are_capped(alice_token, settings):
    settings.RATE_LIMIT_CONVERSATIONS_PER_HOUR = 5
    client = TokenClient(alice_token)

    answers = [await client.post("/api/conversations/") for _ in range(8)]

    assert [a.status_code for a in answers] == [201] * 5 + [429] * 3
    assert answers[-1].json()["error"]["code"] == "rate_limited"
    assert int(answers[-1]["Retry-After"]) > 0


@pytest.mark.asyncio
async def test_a_password_change_or_deactivation_closes_the_open_socket(tabs, alice, settings):
    settings.SOCKET_SESSION_RECHECK_SECONDS = 0.2
    tab = await tabs()

    def change_password():
        alice.set_password("another-long-password")
        alice.save()

    await database_sync_to_async(change_password)()
    closed = await tab.communicator.receive_output(timeout=5)
    assert closed == {"type": "websocket.close", "code": protocol.CLOSE_LOGGED_OUT}


@pytest.mark.asyncio
async def test_a_deactivated_account_cannot_send(tabs, alice, conversation):
    tab = await tabs()
    await database_sync_to_async(lambda: type(alice).objects.filter(pk=alice.pk).update(is_active=False))()

    await tab.ask("What is 1 + 1?")

    assert await tab.communicator.receive_output(timeout=5) == {"type": "websocket.close", "code": 4401}
    assert await stored_messages(conversation) == []


@pytest.mark.asyncio
@pytest.mark.parametrize(("window", "checks"), [(60, 1), (0, 5)])
async def test_a_burst_of_frames_checks_the_session_once_per_window(tabs, settings, monkeypatch, window, checks):
    from conversations import consumers

    settings.SOCKET_SESSION_FRAME_RECHECK_SECONDS = window
    asked = []

    def counting(**kwargs):
        asked.append(kwargs)
        return True

    monkeypatch.setattr(consumers, "session_is_current", counting)
    tab = await tabs()

    for _ in range(5):
        await tab.send({"type": "stop"})  # nothing to stop: no answer, only the check
    await tab.send({"type": "sync"})
    await tab.receive_until(lambda f: f["type"] == "snapshot")

    assert len(asked) == checks + (1 if window == 0 else 0)  # the sync is a sixth frame


@pytest.mark.asyncio
async def test_sync_floods_get_one_snapshot_per_interval_and_then_a_close(tabs, settings):
    interval = settings.SYNC_MIN_INTERVAL_SECONDS = 0.5  # the suite's default is shorter: this is the rule's test
    settings.SYNC_MAX_PER_MINUTE = 20
    opened = time.monotonic()
    tab = await tabs()

    for _ in range(15):
        await tab.send({"type": "sync"})
    # Sent within the interval of the connect's snapshot, the fifteen share one, sent once it is over.
    shared = await tab.receive()
    waited = time.monotonic() - opened
    assert shared["type"] == "snapshot"
    assert waited >= interval - 0.01, waited
    # No second one: it would be due within one interval of the first (a short wait that proves a negative).
    assert await tab.communicator.receive_nothing(timeout=interval + 0.1)

    for _ in range(10):
        await tab.send({"type": "sync"})
    output = None
    for _ in range(10):
        output = await tab.communicator.receive_output(timeout=5)
        if output["type"] == "websocket.close":
            break
    assert output == {"type": "websocket.close", "code": protocol.CLOSE_TOO_MANY_SYNCS}


@pytest.mark.asyncio
async def test_the_snapshot_holds_at_most_the_last_messages(tabs, conversation, settings):
    settings.SNAPSHOT_MAX_MESSAGES = 4
    for n in range(6):
        await database_sync_to_async(message_append)(conversation, role="user", content=f"m{n}")

    tab = await tabs()

    assert [m["content"] for m in tab.snapshot["messages"]] == ["m2", "m3", "m4", "m5"]


@pytest.mark.asyncio
async def test_the_offline_model_answers_deep_nesting_instead_of_failing(tabs):
    tab = await tabs()
    await tab.ask("What is " + "(" * 600 + "1 + 1" + ")" * 600 + "?")
    seen = await tab.run_events_until_done()

    assert seen[-1]["status"] == "completed"
    assert "too long or too deeply nested" in seen[-2]["content"]


def test_a_second_user_limit_is_not_shared(transactional_db):
    alice, bob = make_user("a1"), make_user("b1")
    limits = SendLimits(messages_per_minute=1, concurrent_runs=5)
    for owner in (alice, bob):
        conversation = Conversation.objects.create(owner=owner)
        turn_start(conversation=conversation, content="hi", client_id="c", run_id="r", model="m", worker="w",
                   limits=limits)  # fmt: skip
    with pytest.raises(RateLimited):
        turn_start(conversation=conversation, content="hi", client_id="d", run_id="r2", model="m", worker="w",
                   limits=limits)  # fmt: skip
