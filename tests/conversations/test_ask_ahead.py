"""A send asks the model while its question is being stored (`AGENT_ASK_BEFORE_STORED`): the run acts
only once the store took the send with the history it was asked with, and is dropped otherwise."""

from __future__ import annotations

import time

import pytest
from channels.db import database_sync_to_async

from agent_runtime import stages
from conversations import protocol, runs, sending
from conversations.actions import Refused
from conversations.models import Message
from conversations.sending import send_message
from conversations.services import RateLimited

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def ahead_runs(monkeypatch) -> list:
    """Every run a send started ahead of its store."""
    made = []
    original = runs.run_ahead

    async def spy(**kwargs):
        run = await original(**kwargs)
        if run is not None:
            made.append(run)
        return run

    monkeypatch.setattr(runs, "run_ahead", spy)
    return made


def stored(conversation) -> list[tuple[str, str, str]]:
    return [(m.role, m.status, m.content) for m in Message.objects.filter(conversation=conversation).order_by("id")]


async def test_the_model_is_asked_before_the_question_is_stored_and_that_run_answers(conversation, ahead_runs):
    with stages.timing() as timed:
        outcome = await send_message(conversation=conversation, content="What is 10 + 10?", client_id="a1")
        await outcome.run.task

    [ahead] = ahead_runs
    assert outcome.run.agent_run is ahead
    assert timed.stamps["request"] < timed.stamps["stored"]
    [question, answer] = await database_sync_to_async(stored)(conversation)
    assert question == ("user", "completed", "What is 10 + 10?")
    assert answer[:2] == ("assistant", "completed") and "20" in answer[2]
    assert [step.name for step in ahead.report.tool_steps] == ["add"]


async def test_switched_off_the_model_is_asked_once_the_question_is_stored(conversation, ahead_runs, settings):
    settings.AGENT_ASK_BEFORE_STORED = False
    with stages.timing() as timed:
        outcome = await send_message(conversation=conversation, content="What is 10 + 10?", client_id="a1")
        await outcome.run.task

    assert ahead_runs == []
    assert timed.stamps["request"] > timed.stamps["stored"]


async def test_a_send_the_store_refuses_drops_the_run_before_it_did_anything(conversation, ahead_runs, monkeypatch):
    def refuse(**kwargs):
        time.sleep(0.3)  # long enough for the model's whole first reply: it asks for a tool
        raise RateLimited(7)

    monkeypatch.setattr(sending, "turn_start", refuse)
    with pytest.raises(Refused) as refused:
        await send_message(conversation=conversation, content="What is 10 + 10?", client_id="a1")

    assert (refused.value.code, refused.value.retry_after) == (protocol.RATE_LIMITED, 7)
    [ahead] = ahead_runs
    assert ahead.report.status == "cancelled"
    assert ahead.report.tool_steps == []  # the tool the model asked for never ran
    assert ahead.answer_so_far == ""
    assert runs.active_run_get(conversation.pk) is None
    assert await database_sync_to_async(stored)(conversation) == []


async def test_a_question_stored_after_another_message_is_asked_again_with_that_history(
    conversation, ahead_runs, monkeypatch
):
    read = sending._ahead_history

    def stale(*args):  # as if a tab had moved the branch between the read and the store
        known = read(*args)
        return sending._Known(leaf_id=-1, model=known.model, history=known.history)

    monkeypatch.setattr(sending, "_ahead_history", stale)
    outcome = await send_message(conversation=conversation, content="What is 10 + 10?", client_id="a1")
    await outcome.run.task

    [ahead] = ahead_runs
    assert outcome.run.agent_run is not ahead
    assert ahead.report.status == "cancelled" and ahead.report.tool_steps == []
    [_question, answer] = await database_sync_to_async(stored)(conversation)
    assert answer[:2] == ("assistant", "completed") and "20" in answer[2]


async def test_a_resend_or_a_budget_keeps_the_usual_way(conversation, ahead_runs, settings):
    first = await send_message(conversation=conversation, content="What is 1 + 1?", client_id="same")
    await first.run.task
    resent = await send_message(conversation=conversation, content="What is 1 + 1?", client_id="same")
    assert resent.is_resend

    settings.QUOTA_TOKENS_PER_DAY = 1_000_000  # a budget applies: a request sent ahead would spend uncounted
    limited = await send_message(conversation=conversation, content="What is 2 + 2?", client_id="other")
    await limited.run.task

    assert len(ahead_runs) == 1  # the first send only
