"""The one send path: a refused send answers the same code and text on the socket, the API and the command."""

from __future__ import annotations

import asyncio
import re
from io import StringIO

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.core.management import CommandError, call_command

from api.errors import STATUS_BY_REFUSAL
from api.services import api_token_create
from conversations import protocol, runs
from conversations.actions import Refused
from conversations.models import Conversation, Message
from conversations.selectors import CONCURRENT_RETRY_SECONDS
from conversations.sending import BAD_SEND, RATE_LIMITED, RUN_BUSY, TOO_LONG, send_message
from tests.support.api import TokenClient
from tests.support.api import send_message as api_send
from tests.support.tabs import open_tab

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


async def _start_long_run(conversation: Conversation) -> runs.ActiveRun:
    outcome = await send_message(conversation=conversation, content="count to 500", client_id="long")
    assert outcome.run is not None
    return outcome.run


async def blank(conversation, settings):
    return "   ", (protocol.BAD_REQUEST, BAD_SEND)


async def too_long(conversation, settings):
    settings.MESSAGE_MAX_LENGTH = 10
    return "x" * 11, (protocol.TOO_LONG, TOO_LONG.format(limit=10))


async def busy(conversation, settings):
    await _start_long_run(conversation)
    return "What is 1 + 1?", (protocol.BUSY, RUN_BUSY)


async def rate_limited(conversation, settings):
    settings.RATE_LIMIT_CONCURRENT_RUNS = 1
    other = await database_sync_to_async(Conversation.objects.create)(owner=conversation.owner)
    await _start_long_run(other)
    return "What is 1 + 1?", (protocol.RATE_LIMITED, RATE_LIMITED.format(seconds=CONCURRENT_RETRY_SECONDS))


class Matches:
    """Equal to a string matching `pattern` (a text that names a wait in hours and minutes)."""

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and re.fullmatch(self.pattern, other) is not None

    def __repr__(self) -> str:
        return f"Matches({self.pattern!r})"


async def quota_exceeded(conversation, settings):
    settings.QUOTA_TOKENS_PER_DAY = 1000
    settings.QUOTA_RUN_RESERVE_TOKENS = 100
    await database_sync_to_async(Message.objects.create)(
        conversation=conversation,
        role=Message.Role.ASSISTANT,
        status=Message.Status.COMPLETED,
        usage={"input_tokens": 600, "output_tokens": 350, "total_tokens": 950},
    )
    spent = r"You have used today's token budget \(950 of 1,000 tokens\); it renews in .+\."
    return "What is 1 + 1?", (protocol.QUOTA_EXCEEDED, Matches(spent))


async def through_the_socket(conversation, content):
    tab, connected, _ = await open_tab(conversation.pk, conversation.owner)
    assert connected
    await tab.receive()  # the snapshot
    await tab.ask(content, client_id="refused")
    frame = await tab.receive_until(lambda f: f["type"] == "error" and "seq" not in f)
    await tab.close()
    assert frame[-1]["client_id"] == "refused"
    return frame[-1]["code"], frame[-1]["message"]


async def through_the_api(conversation, content):
    token = await database_sync_to_async(api_token_create)(user=conversation.owner, name="t")
    response = await api_send(TokenClient(token.secret), conversation.pk, content, client_id="refused")
    body = response.json()["error"]
    assert response.status_code == STATUS_BY_REFUSAL[body["code"]]
    return body["code"], body["message"]


async def through_the_command(conversation, content):
    def ask() -> str:
        args = ["--user", conversation.owner.username, "--conversation", str(conversation.pk)]
        with pytest.raises(CommandError) as refused:
            call_command("ask", content, *args, stdout=StringIO())
        return str(refused.value)

    code, _, message = (await sync_to_async(ask, thread_sensitive=False)()).partition(": ")
    return code, message


@pytest.mark.parametrize("refusal", [blank, too_long, busy, rate_limited, quota_exceeded])
@pytest.mark.parametrize("adapter", [through_the_socket, through_the_api, through_the_command])
async def test_a_refused_send_answers_alike_everywhere(conversation, settings, paced, refusal, adapter):
    paced(50)
    content, expected = await refusal(conversation, settings)
    stored_before = await database_sync_to_async(Message.objects.count)()

    assert await adapter(conversation, content) == expected
    assert await database_sync_to_async(Message.objects.count)() == stored_before


async def test_the_service_raises_one_exception_with_code_text_and_wait(conversation, settings, paced):
    paced(50)
    settings.RATE_LIMIT_CONCURRENT_RUNS = 1
    await _start_long_run(conversation)
    other = await database_sync_to_async(Conversation.objects.create)(owner=conversation.owner)

    with pytest.raises(Refused) as refused:
        await send_message(conversation=other, content="What is 1 + 1?", client_id="x")

    assert (refused.value.code, refused.value.retry_after) == (protocol.RATE_LIMITED, CONCURRENT_RETRY_SECONDS)


async def test_a_resend_stores_and_starts_nothing_and_names_the_earlier_answer(conversation, paced):
    paced(50)
    first = await send_message(conversation=conversation, content="count to 100", client_id="same")
    again = await send_message(conversation=conversation, content="count to 100", client_id="same")

    assert first.run is not None and not first.is_resend
    assert again.is_resend and again.resent_answer is not None
    assert again.resent_answer.run_id == first.run.run_id
    first.run.agent_run.cancel()
    await asyncio.wait_for(first.run.task, 5)
    assert await database_sync_to_async(Message.objects.filter(conversation=conversation).count)() == 2


async def test_the_first_question_names_the_conversation_in_every_tab_at_once(tabs, conversation):
    first, second = await tabs(), await tabs()

    await first.ask("What is 2 + 2?\n\nShow   your work.")
    await first.run_events_until_done()
    await second.run_events_until_done()
    await first.ask("And 3 + 3?", client_id="c2")
    await first.run_events_until_done()
    await second.run_events_until_done()

    for tab in (first, second):
        assert [f["title"] for f in tab.frames if f["type"] == "title"] == ["What is 2 + 2? Show your work."]
    stored = await database_sync_to_async(Conversation.objects.get)(pk=conversation.pk)
    assert stored.title == "What is 2 + 2? Show your work."
