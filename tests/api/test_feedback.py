"""Feedback on answers over HTTP: set and change, refusals, and the stored messages carrying it."""

from __future__ import annotations

import json

import pytest
from channels.db import database_sync_to_async

from api.endpoints import BAD_FEEDBACK_BODY
from api.services import api_token_create
from conversations.actions import NO_SUCH_MESSAGE, UNSTORABLE_TEXT
from conversations.models import Conversation, Feedback, Message
from conversations.services import (
    FEEDBACK_BAD_RATING,
    FEEDBACK_COMMENT_TOO_LONG,
    FEEDBACK_GENERATING,
    FEEDBACK_NOT_ANSWER,
)
from tests.messages import message_append
from tests.support.api import AsgiClient, TokenClient

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


def error(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message}}


async def rate(client, message_id: int, body) -> object:
    data = body if isinstance(body, str) else json.dumps(body)
    return await client.post(f"/api/messages/{message_id}/feedback", data, content_type="application/json")


@database_sync_to_async
def turn(conversation: Conversation, status: str = Message.Status.COMPLETED) -> tuple[Message, Message]:
    question = message_append(conversation, role=Message.Role.USER, content="2 + 2?")
    answer = message_append(conversation, role=Message.Role.ASSISTANT, content="4", status=status)
    return question, answer


@database_sync_to_async
def stored_feedback() -> list[tuple[int, int, str]]:
    return list(Feedback.objects.values_list("message_id", "rating", "comment"))


async def test_a_thumbs_down_with_a_comment_is_stored_and_answered(api, conversation):
    _question, answer = await turn(conversation)

    response = await rate(api, answer.pk, {"rating": -1, "comment": "  Wrong sum.  "})

    assert response.status_code == 200
    body = response.json()
    assert (body["message_id"], body["rating"], body["comment"]) == (answer.pk, -1, "Wrong sum.")
    assert body["updated"]
    assert await stored_feedback() == [(answer.pk, -1, "Wrong sum.")]


async def test_a_later_rating_replaces_the_earlier_and_keeps_one_row(api, conversation):
    _question, answer = await turn(conversation)
    await rate(api, answer.pk, {"rating": -1, "comment": "Wrong."})

    response = await rate(api, answer.pk, {"rating": 1})

    assert response.status_code == 200
    assert (response.json()["rating"], response.json()["comment"]) == (1, "")
    assert await stored_feedback() == [(answer.pk, 1, "")]
    first = await database_sync_to_async(Feedback.objects.get)()
    assert first.updated >= first.created


async def test_the_stored_messages_carry_the_feedback_of_answers(api, conversation):
    question, answer = await turn(conversation)
    await rate(api, answer.pk, {"rating": -1, "comment": "Too short."})

    messages = (await api.get(f"/api/conversations/{conversation.pk}")).json()["messages"]

    by_id = {m["id"]: m for m in messages}
    assert by_id[question.pk]["feedback"] is None
    assert by_id[answer.pk]["feedback"]["rating"] == -1
    assert by_id[answer.pk]["feedback"]["comment"] == "Too short."


async def test_an_answer_without_feedback_carries_null(api, conversation):
    await turn(conversation)

    messages = (await api.get(f"/api/conversations/{conversation.pk}")).json()["messages"]

    assert [m["feedback"] for m in messages] == [None, None]


async def test_someone_elses_answer_does_not_exist_for_you(bob, conversation):
    _question, answer = await turn(conversation)  # alice's
    bobs = TokenClient(await database_sync_to_async(lambda: api_token_create(user=bob, name="t").secret)())

    response = await rate(bobs, answer.pk, {"rating": 1})

    assert response.status_code == 404
    assert response.json() == error("not_found", NO_SUCH_MESSAGE)
    assert await stored_feedback() == []


async def test_a_message_that_does_not_exist_is_404(api, conversation):
    assert (await rate(api, 987654, {"rating": 1})).status_code == 404


async def test_an_answer_being_written_is_refused_as_busy(api, conversation):
    _question, answer = await turn(conversation, status=Message.Status.GENERATING)

    response = await rate(api, answer.pk, {"rating": 1})

    assert response.status_code == 409
    assert response.json() == error("busy", FEEDBACK_GENERATING)
    assert await stored_feedback() == []


async def test_a_users_own_message_cannot_be_rated(api, conversation):
    question, _answer = await turn(conversation)

    response = await rate(api, question.pk, {"rating": 1})

    assert response.status_code == 400
    assert response.json() == error("bad_request", FEEDBACK_NOT_ANSWER)


@pytest.mark.parametrize("rating", [0, 2, -2, "1", 1.0, True, None])
async def test_a_rating_other_than_1_or_minus_1_is_refused(api, conversation, rating):
    _question, answer = await turn(conversation)

    response = await rate(api, answer.pk, {"rating": rating})

    assert response.status_code == 400
    assert response.json() == error("bad_request", FEEDBACK_BAD_RATING)
    assert await stored_feedback() == []


async def test_a_comment_over_2000_characters_is_refused_and_2000_are_kept(api, conversation):
    _question, answer = await turn(conversation)

    too_long = await rate(api, answer.pk, {"rating": -1, "comment": "x" * 2001})
    at_limit = await rate(api, answer.pk, {"rating": -1, "comment": "x" * 2000})

    assert too_long.status_code == 400
    assert too_long.json() == error("bad_request", FEEDBACK_COMMENT_TOO_LONG)
    assert at_limit.status_code == 200
    assert await stored_feedback() == [(answer.pk, -1, "x" * 2000)]


@pytest.mark.parametrize(("comment", "what"), [("bad\x00", "a NUL character"), ("bad\ud800", "a lone surrogate")])
async def test_a_comment_holding_an_unstorable_character_is_refused(api, conversation, comment, what):
    _question, answer = await turn(conversation)

    response = await rate(api, answer.pk, {"rating": -1, "comment": comment})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_request"
    assert response.json()["error"]["message"] == UNSTORABLE_TEXT.format(field="comment", what=what)
    assert await stored_feedback() == []


@pytest.mark.parametrize("body", ["not json", "[1]", '"x"'])
async def test_a_body_that_is_not_a_json_object_is_refused(api, conversation, body):
    _question, answer = await turn(conversation)

    response = await rate(api, answer.pk, body)

    assert response.status_code == 400
    assert response.json() == error("bad_request", BAD_FEEDBACK_BODY)


async def test_the_session_cookie_needs_the_csrf_token(alice, conversation):
    _question, answer = await turn(conversation)
    browser = AsgiClient(enforce_csrf_checks=True)
    await database_sync_to_async(browser.force_login)(alice)

    refused = await rate(browser, answer.pk, {"rating": 1})

    assert refused.status_code == 403
    assert await stored_feedback() == []
