"""The JSON side of the API: conversations, stored answers, refusals with the socket's codes, the schema."""

from __future__ import annotations

import json

import pytest
from channels.db import database_sync_to_async

from api.errors import BAD_BODY, BAD_TITLE_BODY, NOT_AUTHENTICATED, NOT_FOUND
from conversations.approvals import BAD_DECISION
from conversations.models import Conversation, Message
from conversations.sending import BAD_BRANCH, BAD_REGENERATE, BAD_SEND, RATE_LIMITED, RUN_BUSY, TOO_LONG
from tests.support.answers import stored
from tests.support.api import AsgiClient, send_message, sse_reader

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


def error(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message}}


async def test_creating_a_conversation_answers_201_with_its_id_title_and_creation_time(api, alice):
    response = await api.post("/api/conversations/")

    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "title", "assistant", "model", "created"}
    assert body["assistant"] == "arithmetic"
    created = await database_sync_to_async(Conversation.objects.get)(pk=body["id"])
    assert (created.owner_id, body["title"]) == (alice.pk, "")

    listed = (await api.get("/api/conversations/")).json()
    assert [c["id"] for c in listed] == [body["id"]]


async def test_a_conversation_is_returned_with_its_messages_and_tool_steps(api, conversation):
    events = [
        e.data for e in await (await sse_reader(await send_message(api, conversation.pk, "What is 10 + 10?"))).to_end()
    ]
    final = next(e for e in events if e["type"] == "final")

    response = await api.get(f"/api/conversations/{conversation.pk}")

    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["title"]) == (conversation.pk, "What is 10 + 10?")
    user, answer = body["messages"]
    assert (user["role"], user["content"], user["client_id"]) == ("user", "What is 10 + 10?", "c1")
    assert (answer["role"], answer["status"], answer["content"]) == ("assistant", "completed", final["content"])
    assert answer["run_id"] == events[0]["run_id"]
    assert answer["tool_steps"] == [
        {"call_id": answer["tool_steps"][0]["call_id"], "name": "add", "args": {"x": 10, "y": 10}, "output": 20}
    ]
    assert answer["usage"] == final["usage"]


@pytest.mark.parametrize(
    "body",
    [
        {"client_id": "c1"},
        {"content": "hi"},
        {"content": "   \n", "client_id": "c1"},
        {"content": "hi", "client_id": ""},
        {"content": "hi", "client_id": "x" * 65},
        {"content": 42, "client_id": "c1"},
        {"content": "hi", "client_id": ["c1"]},
    ],
)
async def test_a_malformed_send_is_a_400_bad_request_with_the_sockets_text(api, conversation, body):
    response = await api.post(f"/api/conversations/{conversation.pk}/messages", body, content_type="application/json")

    assert response.status_code == 400
    assert response.json() == error("bad_request", BAD_SEND)
    assert await stored(Message, conversation=conversation) == []


@pytest.mark.parametrize("raw", ["not json", "[1, 2]", '"text"'])
async def test_a_body_that_is_not_a_json_object_is_a_400(api, conversation, raw):
    response = await api.post(f"/api/conversations/{conversation.pk}/messages", raw, content_type="application/json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"
    assert response.json()["error"]["message"] in (BAD_BODY, BAD_SEND)


async def test_a_message_over_the_limit_is_a_413_too_long_and_nothing_is_stored(api, conversation, settings):
    response = await send_message(api, conversation.pk, "x" * (settings.MESSAGE_MAX_LENGTH + 1))

    assert response.status_code == 413
    assert response.json() == error("too_long", TOO_LONG.format(limit=settings.MESSAGE_MAX_LENGTH))
    assert await stored(Message, conversation=conversation) == []


async def test_sending_while_an_answer_is_written_is_a_409_busy(api, conversation, paced):
    paced(100)
    streaming = await sse_reader(await send_message(api, conversation.pk, "count to 200", client_id="first"))
    await streaming.until(lambda e: e.event == "token")

    response = await send_message(api, conversation.pk, "What is 1 + 1?", client_id="second")

    assert response.status_code == 409
    assert response.json() == error("busy", RUN_BUSY)
    assert len(await stored(Message, conversation=conversation, role="user")) == 1
    await streaming.disconnect()


async def test_sending_too_fast_is_a_429_with_retry_after(api, conversation, settings):
    settings.RATE_LIMIT_MESSAGES_PER_MINUTE = 1
    await (await sse_reader(await send_message(api, conversation.pk, "What is 1 + 1?", client_id="a"))).to_end()

    response = await send_message(api, conversation.pk, "What is 2 + 2?", client_id="b")

    assert response.status_code == 429
    retry_after = int(response["Retry-After"])
    assert response.json() == error("rate_limited", RATE_LIMITED.format(seconds=retry_after))


async def test_another_users_conversation_does_not_exist_for_the_caller(api, bob, paced):
    bobs = await database_sync_to_async(Conversation.objects.create)(owner=bob)
    url = f"/api/conversations/{bobs.pk}"

    refusals = [
        await api.get(url),
        await api.get(f"{url}/stream"),
        await send_message(api, bobs.pk, "What is 1 + 1?"),
        await api.get("/api/conversations/999999"),
    ]

    assert [r.status_code for r in refusals] == [404, 404, 404, 404]
    assert all(r.json() == error("not_found", NOT_FOUND) for r in refusals)
    assert await stored(Message, conversation=bobs) == []


async def test_without_credentials_every_endpoint_is_a_401_with_a_json_error(conversation):
    anonymous = AsgiClient()
    responses = [
        await anonymous.get("/api/conversations/"),
        await anonymous.post("/api/conversations/"),
        await anonymous.get(f"/api/conversations/{conversation.pk}"),
        await anonymous.get(f"/api/conversations/{conversation.pk}/stream"),
        await send_message(anonymous, conversation.pk, "What is 1 + 1?"),
    ]

    assert {r.status_code for r in responses} == {401}
    assert all(r.json() == error("unauthorized", NOT_AUTHENTICATED) for r in responses)
    assert all(r["WWW-Authenticate"].startswith("Bearer") for r in responses)


async def test_the_openapi_description_is_served_at_api_schema_with_the_event_streams(transactional_db):
    response = await AsgiClient().get("/api/schema")

    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    paths = schema["paths"]
    assert set(paths) == {
        "/api/approvals/{approval_id}",
        "/api/me",
        "/api/assistants",
        "/api/conversations/",
        "/api/conversations/{conversation_id}",
        "/api/conversations/{conversation_id}/export",
        "/api/conversations/{conversation_id}/messages",
        "/api/conversations/{conversation_id}/stream",
        "/api/conversations/{conversation_id}/regenerate",
        "/api/conversations/{conversation_id}/branch",
        "/api/messages/{message_id}/edit",
        "/api/messages/{message_id}/feedback",
    }
    for path, method in [
        ("/api/conversations/{conversation_id}/messages", "post"),
        ("/api/conversations/{conversation_id}/stream", "get"),
        ("/api/conversations/{conversation_id}/regenerate", "post"),
        ("/api/messages/{message_id}/edit", "post"),
    ]:
        operation = paths[path][method]
        assert "text/event-stream" in operation["responses"]["200"]["content"]
    sent = paths["/api/conversations/{conversation_id}/messages"]["post"]
    assert {"400", "401", "404", "409", "413"} <= set(sent["responses"])
    headers = [p["name"] for p in paths["/api/conversations/{conversation_id}/stream"]["get"]["parameters"]]
    assert "Last-Event-ID" in headers
    assert set(schema["components"]["securitySchemes"]) == {"TokenAuth", "SessionCookieAuth"}
    assert schema["components"]["securitySchemes"]["TokenAuth"] == {"type": "http", "scheme": "bearer"}


async def test_there_is_no_api_docs_page_pulling_swagger_ui_from_a_cdn(transactional_db):
    response = await AsgiClient().get("/api/docs")

    assert response.status_code == 404
    assert b"swagger" not in response.content.lower() and b"cdn" not in response.content.lower()


@pytest.mark.parametrize(
    ("route", "body", "expected"),
    [
        ("rename", {"title": 5}, BAD_TITLE_BODY),
        ("rename", "not json", BAD_TITLE_BODY),
        ("branch", {"message_id": "first"}, BAD_BRANCH),
        ("regenerate", {}, BAD_REGENERATE),
        ("approval", {"decision": ["approve"]}, BAD_DECISION),
    ],
)
async def test_a_bad_body_is_told_what_its_own_route_takes(api, conversation, route, body, expected):
    method, url = {
        "rename": (api.patch, f"/api/conversations/{conversation.pk}"),
        "branch": (api.post, f"/api/conversations/{conversation.pk}/branch"),
        "regenerate": (api.post, f"/api/conversations/{conversation.pk}/regenerate"),
        "approval": (api.post, "/api/approvals/some-approval"),
    }[route]
    raw = body if isinstance(body, str) else json.dumps(body)

    response = await method(url, raw, content_type="application/json")

    assert response.status_code == 400
    assert response.json() == error("bad_request", expected)


async def test_delete_removes_the_conversation_stopping_its_answer_and_refuses_anyone_elses(api, alice, bob, paced):
    paced(50)
    mine = await database_sync_to_async(Conversation.objects.create)(owner=alice)
    bobs = await database_sync_to_async(Conversation.objects.create)(owner=bob)
    streaming = await sse_reader(await send_message(api, mine.pk, "count to 500", client_id="d"))
    await streaming.until(lambda e: e.event == "token")  # an answer is being written

    assert (await api.delete(f"/api/conversations/{bobs.pk}")).status_code == 404
    deleted = await api.delete(f"/api/conversations/{mine.pk}")

    assert deleted.status_code == 204 and deleted.content == b""
    await streaming.to_end()  # its stream ends
    assert await stored(Conversation, pk=mine.pk) == []
    assert await stored(Message, conversation_id=mine.pk) == []
    assert await stored(Conversation, pk=bobs.pk) != []
    assert (await api.delete(f"/api/conversations/{mine.pk}")).status_code == 404
