"""Token budgets: whose limits apply, what counts, when a send is refused and when it may go again."""

from __future__ import annotations

import datetime as dt

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import Group

from conversations.budgets import IN_FLIGHT_RETRY_SECONDS, QuotaExceeded, budget_check, budget_status, limits_for
from conversations.models import Budget, Conversation, Message
from conversations.services import run_interrupt
from tests.support.runs import offline_run

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 12, 2, 21, 30, tzinfo=dt.UTC)


@pytest.fixture
def quota(settings):
    settings.QUOTA_TOKENS_PER_DAY = 0
    settings.QUOTA_TOKENS_PER_MONTH = 0
    settings.QUOTA_RUN_RESERVE_TOKENS = 100
    return settings


def answer(conversation: Conversation, tokens: int, *, when: dt.datetime = NOW, status=Message.Status.COMPLETED):
    message = Message.objects.create(
        conversation=conversation,
        role=Message.Role.ASSISTANT,
        status=status,
        usage={"input_tokens": tokens // 2, "output_tokens": tokens - tokens // 2},
    )
    Message.objects.filter(pk=message.pk).update(created=when)
    return message


def test_limits_come_from_the_user_else_the_most_generous_group_else_the_deployment(alice, quota):
    quota.QUOTA_TOKENS_PER_DAY, quota.QUOTA_TOKENS_PER_MONTH = 1000, 20000
    assert (limits_for(alice.pk).per_day, limits_for(alice.pk).per_month) == (1000, 20000)

    small, big = Group.objects.create(name="small"), Group.objects.create(name="big")
    alice.groups.add(small, big)
    Budget.objects.create(group=small, tokens_per_day=500)
    Budget.objects.create(group=big, tokens_per_day=3000)
    assert (limits_for(alice.pk).per_day, limits_for(alice.pk).per_month) == (3000, 20000)

    unlimited = Group.objects.create(name="unlimited")
    Budget.objects.create(group=unlimited, tokens_per_month=0)
    alice.groups.add(unlimited)
    assert limits_for(alice.pk).per_month == 0  # 0 is no limit: the most generous

    Budget.objects.create(user=alice, tokens_per_day=10)  # her own wins; her empty month falls back
    assert (limits_for(alice.pk).per_day, limits_for(alice.pk).per_month) == (10, 0)


def test_a_budget_is_for_a_user_or_a_group_never_both(alice):
    from django.db import IntegrityError

    with pytest.raises(IntegrityError):
        Budget.objects.create(user=alice, group=Group.objects.create(name="g"), tokens_per_day=1)


def test_spent_budget_refuses_until_midnight_utc(alice, quota):
    quota.QUOTA_TOKENS_PER_DAY = 1000
    conversation = Conversation.objects.create(owner=alice)
    answer(conversation, 850)
    budget_check(user_id=alice.pk, now=NOW)  # 850 + a reserve of 100 fits

    answer(conversation, 100)
    with pytest.raises(QuotaExceeded) as refused:
        budget_check(user_id=alice.pk, now=NOW)
    assert refused.value.retry_after == 2 * 3600 + 30 * 60  # 21:30 to midnight
    assert "950 of 1,000 tokens" in refused.value.message and "2 h 30 min" in refused.value.message

    answer(conversation, 5000, when=NOW - dt.timedelta(days=1))  # yesterday's tokens do not count today
    budget_check(user_id=alice.pk, now=NOW + dt.timedelta(hours=3))


def test_the_month_renews_on_the_first(alice, quota):
    quota.QUOTA_TOKENS_PER_MONTH = 500
    conversation = Conversation.objects.create(owner=alice)
    answer(conversation, 480, when=NOW - dt.timedelta(days=1))
    with pytest.raises(QuotaExceeded) as refused:
        budget_check(user_id=alice.pk, now=NOW)
    assert refused.value.retry_after == int((dt.datetime(2027, 1, 1, tzinfo=dt.UTC) - NOW).total_seconds())
    assert "this month's" in refused.value.message


def test_answers_being_written_hold_their_reserve(alice, quota):
    quota.QUOTA_TOKENS_PER_DAY = 300
    conversation = Conversation.objects.create(owner=alice)
    answer(conversation, 50)
    answer(Conversation.objects.create(owner=alice), 0, status=Message.Status.GENERATING)
    budget_check(user_id=alice.pk, now=NOW)  # 50 used + 100 held + 100 for this one
    answer(Conversation.objects.create(owner=alice), 0, status=Message.Status.GENERATING)
    with pytest.raises(QuotaExceeded) as refused:
        budget_check(user_id=alice.pk, now=NOW)  # 50 + 200 held: no room for another 100
    assert refused.value.retry_after == IN_FLIGHT_RETRY_SECONDS
    assert "being written" in refused.value.message


def test_no_limit_means_no_refusal_and_status_says_so(alice, quota):
    conversation = Conversation.objects.create(owner=alice)
    answer(conversation, 10**9)
    budget_check(user_id=alice.pk, now=NOW)
    status = budget_status(user_id=alice.pk, now=NOW)
    assert status["day"]["limit"] is None and status["day"]["remaining"] is None and status["low"] is None
    assert status["day"]["resets_at"] == "2026-12-03T00:00:00Z"
    assert status["month"]["resets_at"] == "2027-01-01T00:00:00Z"


def test_status_gives_what_is_left_and_a_notice_under_a_fifth(alice, quota):
    quota.QUOTA_TOKENS_PER_DAY, quota.QUOTA_TOKENS_PER_MONTH = 1000, 100000
    conversation = Conversation.objects.create(owner=alice)
    answer(conversation, 700)
    status = budget_status(user_id=alice.pk, now=NOW)
    assert (status["day"]["used"], status["day"]["remaining"], status["low"]) == (700, 300, None)
    answer(conversation, 150)
    status = budget_status(user_id=alice.pk, now=NOW)
    assert status["low"] == {"period": "day", "remaining": 150, "limit": 1000}
    assert status["month"]["remaining"] == 100000 - 850


@pytest.mark.asyncio
async def test_a_stopped_run_counts_an_estimate_of_its_tokens():
    run = offline_run("count to 300", pace=500)
    seen = 0
    async for event in run:
        if event["type"] == "token":
            seen += 1
            if seen == 20:
                run.cancel()
    assert run.report.status == "cancelled"
    assert run.report.usage_estimated
    stored = run.report.usage_stored()
    assert stored["estimated"] is True and stored["input_tokens"] > 0 and stored["output_tokens"] > 0
    assert stored["total_tokens"] == stored["input_tokens"] + stored["output_tokens"]


@pytest.mark.asyncio
async def test_a_completed_run_counts_the_models_own_usage_unmarked():
    run = offline_run("What is 2 + 3?")
    async for _event in run:
        pass
    assert run.report.status == "completed" and not run.report.usage_estimated
    assert "estimated" not in run.report.usage_stored()


def test_an_answer_whose_process_died_counts_an_estimate(alice):
    conversation = Conversation.objects.create(owner=alice)
    question = Message.objects.create(conversation=conversation, role=Message.Role.USER, content="x" * 400)
    dead = Message.objects.create(
        conversation=conversation,
        parent=question,
        role=Message.Role.ASSISTANT,
        status=Message.Status.GENERATING,
        heartbeat=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1),
    )
    assert run_interrupt(message_id=dead.pk, stale_seconds=1, content="y" * 800, tool_steps=None)
    dead.refresh_from_db()
    assert dead.usage["estimated"] is True
    assert 100 <= dead.usage["input_tokens"] <= 110 and 200 <= dead.usage["output_tokens"] <= 210


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_sends_refused_over_budget_store_nothing(alice, quota):
    from conversations.actions import Refused
    from conversations.sending import send_message

    quota.QUOTA_TOKENS_PER_DAY = 100
    conversation = await database_sync_to_async(Conversation.objects.create)(owner=alice)
    await database_sync_to_async(answer)(conversation, 100, when=dt.datetime.now(dt.UTC))
    with pytest.raises(Refused) as refused:
        await send_message(conversation=conversation, content="What is 1 + 1?", client_id="over")
    assert refused.value.code == "quota_exceeded" and refused.value.retry_after >= 1
    assert await database_sync_to_async(Message.objects.filter(client_id="over").exists)() is False


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_every_tab_of_the_user_hears_what_is_left_once_an_answer_ends(tabs, alice, conversation, quota):
    quota.QUOTA_TOKENS_PER_DAY = 1000
    await database_sync_to_async(answer)(
        await database_sync_to_async(Conversation.objects.create)(owner=alice), 700, when=dt.datetime.now(dt.UTC)
    )
    tab, other = await tabs(), await tabs()
    await tab.ask("What is 2 + 3?")
    await tab.run_events_until_done()

    for each in (tab, other):
        frames = await each.receive_until(lambda f: f.get("type") == "budget")
        low = frames[-1]["low"]
        assert low["period"] == "day" and low["limit"] == 1000 and 0 < low["remaining"] < 200


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_without_a_budget_no_budget_frame_is_sent(tabs, quota):
    tab = await tabs()
    await tab.ask("What is 2 + 3?", client_id="first")
    await tab.run_events_until_done()
    await tab.ask("What is 3 + 3?", client_id="second")
    await tab.run_events_until_done()
    assert not [f for f in tab.frames if f.get("type") == "budget"]
