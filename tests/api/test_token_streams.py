"""An event stream opened with an API token ends when the token is revoked or expires; the run goes on."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest
from channels.db import database_sync_to_async

from api.models import ApiToken
from api.services import api_token_create, api_token_revoke
from api.sse import TOKEN_LAPSED
from tests.support.answers import wait_until_answered
from tests.support.api import AsgiClient, TokenClient, is_sse_token_with, send_message, sse_reader, stream_url

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

RECHECK = 0.3
SLACK = 1.0
"""Time allowed past the recheck interval for the check itself (a thread, a query)."""
LAPSED_COMMENT = TOKEN_LAPSED.removeprefix(":").strip()


@pytest.fixture
def recheck(settings):
    settings.API_TOKEN_RECHECK_SECONDS = RECHECK


async def create_token(user):
    return await database_sync_to_async(api_token_create)(user=user, name="script")


async def revoke(user, token) -> None:
    assert await database_sync_to_async(api_token_revoke)(user=user, token_id=token.pk)


async def ends_within(reader, seconds: float) -> None:
    """Read the stream to its end, which must come within `seconds`."""
    try:
        await asyncio.wait_for(reader.to_end(), seconds)
    except TimeoutError:
        await reader.disconnect()
        raise AssertionError(f"the stream was still open after {seconds} s") from None


async def test_revoking_the_token_ends_its_idle_stream_within_the_recheck_interval(alice, conversation, recheck):
    created = await create_token(alice)
    # No keep-alive would come for a minute: the check does not wait for traffic.
    waiting = await sse_reader(await TokenClient(created.secret).get(stream_url(conversation)))

    await revoke(alice, created.token)

    await ends_within(waiting, RECHECK + SLACK)
    assert waiting.comments[-1] == LAPSED_COMMENT
    assert waiting.events == []


async def test_revoking_the_token_mid_run_ends_the_stream_but_not_the_run(alice, conversation, recheck, paced):
    paced(100)
    created = await create_token(alice)
    reader = await sse_reader(await send_message(TokenClient(created.secret), conversation.pk, "count to 200"))
    await reader.until(is_sse_token_with("3,"))

    await revoke(alice, created.token)

    await ends_within(reader, RECHECK + SLACK)
    assert reader.comments[-1] == LAPSED_COMMENT
    assert "done" not in [e.event for e in reader.events]
    answer = (await wait_until_answered(conversation))[-1]
    assert answer.status == "completed" and "200" in answer.content


async def test_a_token_expiring_while_its_stream_is_open_ends_it(alice, conversation, recheck):
    created = await create_token(alice)
    expires = datetime.now(UTC) + timedelta(seconds=0.5)
    await ApiToken.objects.filter(pk=created.token.pk).aupdate(expires=expires)

    waiting = await sse_reader(await TokenClient(created.secret).get(stream_url(conversation)))
    await ends_within(waiting, 0.5 + RECHECK + SLACK)

    assert datetime.now(UTC) >= expires
    assert waiting.comments[-1] == LAPSED_COMMENT


async def test_a_working_token_keeps_its_stream_open(alice, conversation, recheck, settings):
    settings.API_SSE_KEEPALIVE_SECONDS = RECHECK / 3
    created = await create_token(alice)
    waiting = await sse_reader(await TokenClient(created.secret).get(stream_url(conversation)))

    deadline = time.monotonic() + 3 * RECHECK
    while time.monotonic() < deadline:
        assert await waiting.next_block()

    assert set(waiting.comments) == {"keep-alive"}
    await waiting.disconnect()


async def test_a_session_cookie_stream_is_bound_to_no_token(alice, conversation, recheck, settings):
    settings.API_SSE_KEEPALIVE_SECONDS = RECHECK / 3
    created = await create_token(alice)
    browser = AsgiClient()
    await browser.aforce_login(alice)
    # A token request first, in the same task: what it authenticated must not stick to the next request.
    assert (await TokenClient(created.secret).get("/api/conversations/")).status_code == 200
    waiting = await sse_reader(await browser.get(stream_url(conversation)))

    await revoke(alice, created.token)
    deadline = time.monotonic() + 3 * RECHECK
    while time.monotonic() < deadline:
        assert await waiting.next_block()

    assert set(waiting.comments) == {"keep-alive"}
    await waiting.disconnect()
