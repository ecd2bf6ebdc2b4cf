"""Hostile and broken input, and failing services: each answered clearly, nothing lost."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from channels.db import database_sync_to_async
from django.contrib.sessions.models import Session
from django.test import Client
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from agent_runtime.llm import ModelConfig
from conversations import runs
from conversations.consumers import BAD_JSON, UNKNOWN_FRAME
from conversations.models import Conversation, Message
from conversations.protocol import CLOSE_GONE, CLOSE_LOGGED_OUT
from conversations.sending import BAD_SEND
from tests.fake_openai import ErrorResponse, StreamResponse, content_chunks, tool_calls_chunks
from tests.support.answers import stored_messages, wait_until_answered
from tests.support.runs import assert_well_formed, model_at
from tests.support.tabs import is_token_with

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(10**30), max_value=10**30), st.floats())
json_values = st.recursive(
    json_scalars | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
json_containers = st.lists(json_values, max_size=3) | st.dictionaries(st.text(max_size=5), json_values, max_size=3)
# Built, not filtered: a list of 200 frames each drawn through filters trips Hypothesis's filter_too_much.
not_a_string = json_scalars | json_containers
not_an_object = json_scalars | st.text(max_size=10) | st.lists(json_values, max_size=3)
malformed_send = st.one_of(
    st.fixed_dictionaries(
        {"type": st.just("send"), "content": not_a_string, "client_id": st.text(min_size=1, max_size=5)}
    ),
    st.fixed_dictionaries(
        {"type": st.just("send"), "content": st.text(min_size=1, max_size=5), "client_id": not_a_string}
    ),
    st.fixed_dictionaries({"type": st.just("send"), "content": st.text(min_size=1, max_size=5)}),
    st.fixed_dictionaries({"type": st.just("send"), "client_id": st.text(min_size=1, max_size=5)}),
    st.fixed_dictionaries({"type": st.just("send"), "content": st.just(" \n\t "), "client_id": st.just("x")}),
)
unknown_type = st.dictionaries(st.text(max_size=5), json_values, max_size=3).filter(
    lambda d: d.get("type") not in ("send", "stop", "sync")
)
malformed_frames = st.one_of(
    malformed_send.map(json.dumps),
    not_an_object.map(json.dumps),
    unknown_type.map(json.dumps),
    st.text(min_size=1, max_size=30).map(lambda t: t + "}" if _is_json(t) else t),  # "}" after JSON: extra data
    st.integers(min_value=2000, max_value=50000).map(lambda depth: "[" * depth + "]" * depth),
    st.binary(min_size=1, max_size=20).map(lambda b: b"\xff\xfe" + b),
)  # fmt: skip


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


@settings(
    max_examples=5,
    deadline=None,
    phases=[Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(frames=st.lists(malformed_frames, min_size=200, max_size=200))
async def test_a_thousand_malformed_frames_each_get_bad_request_and_the_socket_stays_usable(tabs, conversation, frames):
    tab = await tabs()
    for frame in frames:
        if isinstance(frame, bytes):
            await tab.communicator.send_to(bytes_data=frame)
        else:
            await tab.send(frame)
        error = await tab.receive()
        assert (error["type"], error["code"]) == ("error", "bad_request"), frame
        assert error["message"] in (BAD_JSON, BAD_SEND, UNKNOWN_FRAME)
    await tab.ask("What is 1 + 1?", client_id=uuid.uuid4().hex)
    seen = await tab.run_events_until_done()
    assert seen[-1]["status"] == "completed"
    await tab.close()


async def test_a_socket_whose_session_was_logged_out_elsewhere_can_no_longer_send(tabs, conversation):
    tab = await tabs()
    await database_sync_to_async(lambda: Session.objects.all().delete())()

    await tab.ask("What is 2 + 2?")
    closed = await tab.communicator.receive_output(timeout=5)
    assert closed == {"type": "websocket.close", "code": CLOSE_LOGGED_OUT}
    assert await stored_messages(conversation) == []


async def test_messages_per_minute_are_limited_with_retry_after(tabs, conversation, settings):
    settings.RATE_LIMIT_MESSAGES_PER_MINUTE = 2
    tab = await tabs()
    for n in range(2):
        await tab.ask(f"What is {n} + 1?", client_id=f"m{n}")
        await tab.run_events_until_done()

    await tab.ask("What is 9 + 1?", client_id="m9")
    error = await tab.receive()
    assert (error["code"], error["client_id"]) == ("rate_limited", "m9")
    assert 1 <= error["retry_after"] <= 60
    assert len(await stored_messages(conversation)) == 4

    await tab.ask("What is 1 + 1?", client_id="m1")  # a resend of a stored message is not refused
    await tab.send({"type": "sync"})
    assert (await tab.receive())["type"] == "snapshot"


async def test_concurrent_runs_are_limited_across_conversations_and_many_tabs_do_not_lock_out(
    tabs, alice, conversation, settings, paced
):
    settings.RATE_LIMIT_CONCURRENT_RUNS = 1
    paced(200)
    opened = [await tabs() for _ in range(8)]
    await opened[0].ask("count to 400")
    await opened[0].receive_until(is_token_with("3,"))

    other = await database_sync_to_async(Conversation.objects.create)(owner=alice)
    from tests.support.tabs import open_tab

    tab, connected, _ = await open_tab(other.pk, alice)
    assert connected
    await tab.receive()
    await tab.ask("What is 1 + 1?", client_id="elsewhere")
    error = await tab.receive()
    assert error["code"] == "rate_limited" and error["retry_after"] > 0
    await opened[1].send({"type": "stop"})
    await opened[0].run_events_until_done()
    await tab.close()


async def test_deleting_a_conversation_while_it_streams_stops_the_run_and_closes_its_tabs(
    tabs, alice, conversation, paced
):
    paced(200)
    tab = await tabs()
    await tab.ask("count to 1000")
    await tab.receive_until(is_token_with("5,"))
    active = runs.active_run_get(conversation.pk)

    client = Client()
    await database_sync_to_async(client.force_login)(alice)
    response = await database_sync_to_async(client.post)(f"/conversations/{conversation.pk}/delete/")
    assert response.status_code == 302

    await asyncio.wait_for(active.task, 5)
    assert active.task.exception() is None
    assert active.agent_run.report.status == "cancelled"
    frames = []
    while True:
        output = await tab.communicator.receive_output(timeout=5)
        if output["type"] == "websocket.close":
            assert output["code"] == CLOSE_GONE
            break
        frames.append(json.loads(output["text"]))
    assert not await database_sync_to_async(Message.objects.filter(conversation_id=conversation.pk).exists)()


@pytest.mark.parametrize(
    ("response", "code"),
    [
        (ErrorResponse(status=500, message="upstream exploded"), "model_error"),
        (ErrorResponse(status=429, message="slow down", headers={"Retry-After": "9"}), "model_rate_limited"),
        (StreamResponse(content_chunks(["Partial ", "answer ", "then ", "nothing"]), cut_after=3), "model_unavailable"),
        (StreamResponse(content_chunks(["Partial ", "answer"]), stall_after=2, stall_seconds=30), "timeout"),
    ],
    ids=["500", "429", "cut", "stall"],
)
async def test_a_failing_model_service_gives_every_tab_error_then_done_and_stores_what_there_is(
    tabs, conversation, settings, fake_openai, response, code
):
    settings.AGENT_MODEL = model_at(fake_openai)
    settings.AGENT_RUN_TIMEOUT = 1.5
    fake_openai.enqueue(response)
    first, second = await tabs(), await tabs()

    await first.ask("Tell me something")
    seen = await first.run_events_until_done()
    assert await second.run_events_until_done() == seen
    assert_well_formed(seen)
    assert [e["type"] for e in seen[-2:]] == ["error", "done"]
    assert seen[-2]["code"] == code and seen[-2]["message"]
    user, assistant = await wait_until_answered(conversation)
    assert user.content == "Tell me something"
    assert (assistant.status, assistant.error) == ("error", seen[-2]["message"])
    assert assistant.content == "".join(e["text"] for e in seen if e["type"] == "token")


async def test_a_refused_connection_to_the_model_is_an_error_not_a_hang(tabs, conversation, settings):
    from tests.live_server import free_port

    settings.AGENT_MODEL = ModelConfig(api_key="test", base_url=f"http://127.0.0.1:{free_port()}/v1", max_retries=0)
    tab = await tabs()
    await tab.ask("Hello?")
    seen = await tab.run_events_until_done()
    assert seen[-2]["code"] == "model_unavailable"
    assert seen[-1]["status"] == "error"


async def test_after_a_misbehaving_model_the_conversation_is_still_usable(tabs, conversation, settings, fake_openai):
    settings.AGENT_MODEL = model_at(fake_openai)
    fake_openai.enqueue(
        StreamResponse(tool_calls_chunks([("c1", "no_such_tool", ['{"x": 1}'])])),
        StreamResponse(tool_calls_chunks([("c2", "add", ['{"x": "abc", "y": 1}'])])),
        StreamResponse(tool_calls_chunks([("c3", "add", ['{"x": 1, "y": 1'])])),
        StreamResponse(tool_calls_chunks([("c4", "final_answer", ['{"answer": "I could not.", "tools_used": []}'])])),
        StreamResponse(content_chunks([])),
        StreamResponse(content_chunks(["Fine ", "now."])),
    )
    tab = await tabs()
    await tab.ask("Break yourself", client_id="one")
    seen = await tab.run_events_until_done()
    errors = [e["error"] for e in seen if e["type"] == "tool_result"]
    assert len(errors) == 3 and "unknown tool" in errors[0] and "must be a number" in errors[1]
    assert seen[-2]["content"] == "I could not."

    await tab.ask("Say nothing", client_id="two")
    empty = await tab.run_events_until_done()
    assert empty[-2]["code"] == "model_error" and empty[-1]["status"] == "error"

    await tab.ask("Again", client_id="three")
    fine = await tab.run_events_until_done()
    assert fine[-2]["content"] == "Fine now."
    assert [m.status for m in await stored_messages(conversation) if m.role == "assistant"] == [
        "completed",
        "error",
        "completed",
    ]
