"""`GET /api/conversations/?q=` past the search bounds: 400 `bad_request` naming them, no query made."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from django.conf import settings

from conversations.actions import BAD_REQUEST, SEARCH_TOO_LONG
from conversations.models import Conversation

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


def too_long() -> dict:
    message = SEARCH_TOO_LONG.format(words=settings.SEARCH_MAX_WORDS, chars=settings.SEARCH_MAX_CHARS)
    return {"error": {"code": BAD_REQUEST, "message": message}}


def words(count: int) -> str:
    return " ".join(f"w{n}" for n in range(count))


@pytest.mark.parametrize("q", [words(13), "x" * 201, words(2000)], ids=["13 words", "201 characters", "2000 words"])
async def test_a_search_past_the_bounds_is_400_bad_request(api, q):
    response = await api.get("/api/conversations/", {"q": q})

    assert response.status_code == 400
    assert response.json() == too_long()


async def test_a_search_within_the_bounds_still_finds(api, alice):
    holiday = await database_sync_to_async(Conversation.objects.create)(owner=alice, title="Lisbon holiday")
    q = " ".join(["lisbon"] * settings.SEARCH_MAX_WORDS)

    response = await api.get("/api/conversations/", {"q": q})

    assert response.status_code == 200
    assert [c["id"] for c in response.json()] == [holiday.pk]


async def test_the_schema_documents_the_400(api):
    schema = (await api.get("/api/schema")).json()

    answers = schema["paths"]["/api/conversations/"]["get"]["responses"]
    assert "400" in answers
