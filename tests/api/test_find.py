"""Conversations you can find over HTTP: rename, search, export; refusals and others' conversations."""

from __future__ import annotations

import json

import pytest
from channels.db import database_sync_to_async

from api.endpoints import BAD_EXPORT_FORMAT
from api.errors import NOT_FOUND
from conversations.actions import UNSTORABLE_TEXT
from conversations.models import Conversation
from conversations.services import TITLE_EMPTY, TITLE_TOO_LONG
from tests.messages import message_append
from tests.support.api import send_message, sse_reader

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


def error(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message}}


async def rename(api, conversation_id: int, title) -> object:
    return await api.patch(
        f"/api/conversations/{conversation_id}", json.dumps({"title": title}), content_type="application/json"
    )


@database_sync_to_async
def conversation_with(owner, title: str, *messages: tuple[str, str], **extra) -> Conversation:
    conversation = Conversation.objects.create(owner=owner, title=title)
    for role, content in messages:
        message_append(conversation, role=role, content=content, **extra)
    return conversation


@database_sync_to_async
def reload(conversation: Conversation) -> Conversation:
    return Conversation.objects.get(pk=conversation.pk)


async def test_renaming_trims_the_title_and_marks_it_as_the_users(api, conversation):
    response = await rename(api, conversation.pk, "  Trip to   Lisbon \n")

    assert response.status_code == 200
    assert response.json()["title"] == "Trip to Lisbon"
    stored = await reload(conversation)
    assert (stored.title, stored.title_set_by_user) == ("Trip to Lisbon", True)


async def test_a_renamed_conversation_keeps_its_title_when_the_first_message_is_sent(api, conversation):
    await rename(api, conversation.pk, "My sums")

    await (await sse_reader(await send_message(api, conversation.pk, "What is 2 + 2?"))).to_end()

    assert (await reload(conversation)).title == "My sums"


@pytest.mark.parametrize(
    ("title", "message"),
    [
        ("   ", TITLE_EMPTY),
        ("x" * 201, TITLE_TOO_LONG),
    ],
)
async def test_a_bad_title_is_refused_with_400_and_nothing_changes(api, conversation, title, message):
    response = await rename(api, conversation.pk, title)

    assert response.status_code == 400
    assert response.json() == error("bad_request", message)
    assert (await reload(conversation)).title == ""


@pytest.mark.parametrize("body", ['{"title": "bad \\u0000 text"}', '{"title": "bad \\ud800 text"}'])
async def test_a_title_holding_a_nul_or_a_lone_surrogate_is_refused_naming_the_field(api, conversation, body):
    response = await api.patch(f"/api/conversations/{conversation.pk}", body, content_type="application/json")

    assert response.status_code == 400
    refusal = response.json()["error"]
    assert refusal["code"] == "bad_request"
    assert refusal["message"].startswith(UNSTORABLE_TEXT.split("{what}")[0].format(field="title"))
    assert (await reload(conversation)).title == ""


async def test_another_users_conversation_cannot_be_renamed_or_exported(api, bob):
    bobs = await conversation_with(bob, "Bob's secrets", ("user", "my password is hunter2"))

    renamed = await rename(api, bobs.pk, "Mine now")
    exports = [await api.get(f"/api/conversations/{bobs.pk}/export?format={f}") for f in ("md", "json")]
    found = await api.get("/api/conversations/?q=hunter2")

    assert renamed.status_code == 404 and renamed.json() == error("not_found", NOT_FOUND)
    assert [r.status_code for r in exports] == [404, 404]
    assert found.json() == []
    assert (await reload(bobs)).title == "Bob's secrets"


async def test_search_matches_every_word_in_titles_and_messages_case_insensitively(api, alice):
    by_title = await conversation_with(alice, "Holiday PLANS", ("user", "flights to Porto"))
    by_message = await conversation_with(alice, "Misc", ("user", "Plans for the holiday?"))
    one_word = await conversation_with(alice, "Holiday", ("user", "beaches"))
    other = await conversation_with(alice, "Sums", ("user", "What is 1 + 1?"))

    found = (await api.get("/api/conversations/?q=holiday%20plans")).json()
    everything = (await api.get("/api/conversations/?q=")).json()

    assert {c["id"] for c in found} == {by_title.pk, by_message.pk}
    assert {c["id"] for c in everything} == {by_title.pk, by_message.pk, one_word.pk, other.pk}


async def test_the_json_export_holds_the_conversation_its_messages_tool_steps_and_usage(api, alice):
    steps = [{"call_id": "c1", "name": "add", "args": {"x": 1, "y": 2}, "output": 3}]
    conversation = await conversation_with(alice, "Sums: one + two", ("user", "What is 1 + 2?"))
    await database_sync_to_async(message_append)(
        conversation, role="assistant", content="1 + 2 = 3.", tool_steps=steps, usage={"total": 9}
    )

    response = await api.get(f"/api/conversations/{conversation.pk}/export?format=json")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Content-Disposition"] == (
        f'attachment; filename="conversation-{conversation.pk}-sums-one-two.json"'
    )
    data = json.loads(response.content)
    assert (data["id"], data["title"], data["assistant"]) == (conversation.pk, "Sums: one + two", "arithmetic")
    assert "created" in data
    user, answer = data["messages"]
    assert (user["role"], user["content"]) == ("user", "What is 1 + 2?")
    assert (answer["content"], answer["tool_steps"], answer["usage"]) == ("1 + 2 = 3.", steps, {"total": 9})


async def test_the_markdown_export_reads_as_a_dialogue_with_tool_calls_as_fenced_json(api, alice):
    steps = [{"call_id": "c1", "name": "add", "args": {"x": 1, "y": 2}, "output": 3}]
    conversation = await conversation_with(alice, "Sums", ("user", "What is 1 + 2?"))
    await database_sync_to_async(message_append)(conversation, role="assistant", content="1 + 2 = 3.", tool_steps=steps)

    response = await api.get(f"/api/conversations/{conversation.pk}/export?format=md")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/markdown")
    assert response["Content-Disposition"] == f'attachment; filename="conversation-{conversation.pk}-sums.md"'
    text = response.content.decode()
    assert text.startswith("# Sums\n")
    assert text.index("## You\n\nWhat is 1 + 2?") < text.index("## Assistant") < text.index("```json")
    assert '"name": "add"' in text and text.rstrip().endswith("1 + 2 = 3.")


async def test_another_export_format_is_refused_with_400(api, conversation):
    response = await api.get(f"/api/conversations/{conversation.pk}/export?format=pdf")

    assert response.status_code == 400
    assert response.json() == error("bad_request", BAD_EXPORT_FORMAT.format(export_format="pdf"))
