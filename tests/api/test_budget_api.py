"""`GET /api/me`: the caller and their token budget; a send past the budget answers 429 `quota_exceeded`."""

from __future__ import annotations

import datetime as dt

import pytest
from channels.db import database_sync_to_async

from conversations.models import Budget, Conversation, Message
from tests.support.api import AsgiClient, send_message

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


def spend(conversation: Conversation, tokens: int) -> None:
    Message.objects.create(
        conversation=conversation,
        role=Message.Role.ASSISTANT,
        usage={"input_tokens": tokens, "output_tokens": 0, "total_tokens": tokens},
    )


async def test_me_gives_the_budget_and_what_is_left(api, alice, settings):
    settings.QUOTA_TOKENS_PER_MONTH = 0
    settings.QUOTA_RUN_RESERVE_TOKENS = 10
    await database_sync_to_async(Budget.objects.create)(user=alice, tokens_per_day=1000)
    conversation = await database_sync_to_async(Conversation.objects.create)(owner=alice)
    await database_sync_to_async(spend)(conversation, 900)

    response = await api.get("/api/me")
    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["username"]) == (alice.pk, "alice")
    day = body["budget"]["day"]
    assert (day["limit"], day["used"], day["remaining"], day["in_progress"]) == (1000, 900, 100, 0)
    tomorrow = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)
    assert day["resets_at"] == f"{tomorrow.isoformat()}T00:00:00Z"
    assert body["budget"]["month"]["limit"] is None
    assert body["budget"]["low"] == {"period": "day", "remaining": 100, "limit": 1000}


async def test_a_send_past_the_budget_is_429_quota_exceeded_with_retry_after(api, alice, settings):
    settings.QUOTA_TOKENS_PER_DAY = 500
    conversation = await database_sync_to_async(Conversation.objects.create)(owner=alice)
    await database_sync_to_async(spend)(conversation, 500)

    response = await send_message(api, conversation.pk, "What is 1 + 1?", client_id="over")
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "quota_exceeded"
    assert 1 <= int(response["Retry-After"]) <= 86400


async def test_me_needs_a_token_or_session():
    response = await AsgiClient().get("/api/me")
    assert response.status_code == 401
