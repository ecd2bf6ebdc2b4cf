"""`manage.py purge_conversations`: conversations idle past the limit go with everything of theirs, in
batches; recent ones, touched ones and those answering now stay; bad limits are refused; a dry run
deletes nothing; Redis down is said and not fatal; open tabs are told."""

from __future__ import annotations

import asyncio
import io
from datetime import timedelta

import pytest
import redis
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.utils import timezone

from conversations import deletion
from conversations.event_log import KEY_PREFIX
from conversations.models import Conversation, Feedback, Message
from conversations.protocol import CLOSE_GONE
from tests.live_server import free_port
from tests.messages import message_append
from tests.services import require_redis
from tests.support.stored import age, full_conversation, logged, rows_of
from tests.support.users import make_user

pytestmark = pytest.mark.django_db(transaction=True)

GONE = {"conversations": 0, "messages": 0, "feedback": 0, "approvals": 0}


def purge(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("purge_conversations", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_idle_conversations_go_with_every_row_and_event_log_recent_and_touched_ones_stay(alice, bob):
    idle = [full_conversation(alice, "idle 1"), full_conversation(alice, "idle 2"), full_conversation(bob, "idle 3")]
    for stored in idle:
        age(stored, 400)
    recent = full_conversation(alice, "recent")
    age(recent, 10)
    asked_lately = full_conversation(bob, "old, but asked again yesterday")
    age(asked_lately, 400)
    Message.objects.filter(conversation_id=asked_lately.pk, role="user").update(created=timezone.now())
    rated_lately = full_conversation(bob, "old, but rated yesterday")
    age(rated_lately, 400)
    Feedback.objects.filter(message__conversation_id=rated_lately.pk).update(updated=timezone.now())

    out, err = purge("--older-than-days", "365")

    for stored in idle:
        assert rows_of(stored.pk) == GONE
        assert all(logged(run_id) == [] for run_id in stored.run_ids)
    for stored in (recent, asked_lately, rated_lately):
        assert rows_of(stored.pk) == {"conversations": 1, "messages": 3, "feedback": 1, "approvals": 1}
        assert all(logged(run_id) for run_id in stored.run_ids)
    assert "Deleted 3 conversation(s)" in out and "of 2 user(s): 9 message(s), 3 feedback, 3 approval(s)." in out
    assert err == ""


def test_a_conversation_answering_now_is_never_purged():
    alice = make_user("alice")
    answering = full_conversation(alice)
    message_append(answering.conversation, role="user", content="count to 50", client_id="late")
    message_append(answering.conversation, role="assistant", status=Message.Status.GENERATING, run_id="run-now")
    age(answering, 400)  # even its streaming answer began long ago (a run the sweep has not reached)

    out, _ = purge("--older-than-days", "30")

    assert Conversation.objects.filter(pk=answering.pk).exists()
    assert "Deleted 0 conversation(s)" in out and "Kept 1 conversation(s) whose answer is being written now." in out


def test_a_conversation_that_starts_answering_after_it_was_chosen_is_kept():
    """Chosen in one statement, deleted in the next: the batch checks again under its lock."""
    alice = make_user("alice")
    stored = full_conversation(alice)
    chosen = Conversation.objects.filter(pk=stored.pk)  # not filtered for answers being written
    message_append(stored.conversation, role="user", content="count to 50", client_id="late")
    message_append(stored.conversation, role="assistant", status=Message.Status.GENERATING, run_id="run-now")

    deleted = deletion.conversations_delete(chosen, keep_generating=True)

    assert deleted.counts["conversations"] == 0 and Conversation.objects.filter(pk=stored.pk).exists()


def test_a_big_purge_commits_batch_by_batch(monkeypatch):
    alice = make_user("alice")
    stored = [full_conversation(alice, f"old {n}", logs=False) for n in range(5)]
    for each in stored:
        age(each, 400)
    batches: list[tuple[list[int], bool]] = []
    real = deletion.conversations_delete

    def recorded(conversations, **options):
        batches.append((sorted(conversations.values_list("pk", flat=True)), connection.in_atomic_block))
        return real(conversations, **options)

    monkeypatch.setattr(deletion, "conversations_delete", recorded)

    out, _ = purge("--older-than-days", "30", "--batch-size", "2")

    ids = sorted(each.pk for each in stored)
    assert batches == [(ids[0:2], False), (ids[2:4], False), (ids[4:], False)], "own transaction per batch"
    assert not Conversation.objects.exists()
    assert "Deleted 5 conversation(s)" in out and "15 message(s)" in out


def test_a_dry_run_says_what_would_go_and_deletes_nothing(alice, bob):
    for owner in (alice, alice, bob):
        age(full_conversation(owner), 100)
    age(full_conversation(bob), 5)

    out, _ = purge("--older-than-days", "90", "--dry-run")

    assert "Would delete 3 conversation(s) with 9 message(s) (every version), of 2 user(s)." in out
    assert "Nothing was deleted." in out
    assert Conversation.objects.count() == 4 and Message.objects.count() == 12


def test_without_an_option_it_keeps_what_the_setting_says(alice, settings):
    stored = full_conversation(alice)
    age(stored, 4000)

    settings.AGENT_RETENTION_DAYS = 0
    out, _ = purge()
    assert "AGENT_RETENTION_DAYS is 0: conversations are kept forever" in out
    assert Conversation.objects.filter(pk=stored.pk).exists()

    settings.AGENT_RETENTION_DAYS = 5000
    purge()
    assert Conversation.objects.filter(pk=stored.pk).exists()

    settings.AGENT_RETENTION_DAYS = 3650
    out, _ = purge()
    assert not Conversation.objects.filter(pk=stored.pk).exists() and "Deleted 1 conversation(s)" in out


@pytest.mark.parametrize("days", ["0", "-1", "1.5", "abc", "", "36501", "1e3", "٣", "9" * 40])
def test_a_limit_that_is_not_a_whole_number_of_days_from_1_to_36500_is_refused(alice, days):
    age(full_conversation(alice, logs=False), 40000)
    with pytest.raises(CommandError, match="--older-than-days takes a whole number of days from 1 to 36,500"):
        purge("--older-than-days", days)
    assert Conversation.objects.count() == 1


@pytest.mark.parametrize("days", [-3, 36501])
def test_a_retention_setting_out_of_bounds_is_refused(alice, settings, days):
    settings.AGENT_RETENTION_DAYS = days
    with pytest.raises(CommandError, match="AGENT_RETENTION_DAYS must be 0"):
        purge()


@pytest.mark.parametrize("size", ["0", "5001", "x"])
def test_a_batch_size_out_of_bounds_is_refused(transactional_db, size):
    with pytest.raises(CommandError, match="--batch-size takes a whole number of conversations from 1 to 5,000"):
        purge("--older-than-days", "30", "--batch-size", size)


def test_the_largest_limit_is_accepted(alice):
    age(full_conversation(alice, logs=False), 36501)
    out, _ = purge("--older-than-days", "36500")
    assert "Deleted 1 conversation(s)" in out


@pytest.mark.redis
def test_the_runs_event_logs_in_redis_go_with_their_conversations(alice, settings):
    settings.REDIS_URL = require_redis()
    client = redis.Redis.from_url(settings.REDIS_URL)
    idle, recent = full_conversation(alice, logs=False), full_conversation(alice, logs=False)
    age(idle, 400)
    for run_id in idle.run_ids + recent.run_ids:
        client.xadd(KEY_PREFIX + run_id, {"e": "{}"}, id="1-0")

    out, err = purge("--older-than-days", "30")

    assert [client.exists(KEY_PREFIX + run_id) for run_id in idle.run_ids] == [0, 0]
    assert [client.exists(KEY_PREFIX + run_id) for run_id in recent.run_ids] == [1, 1]
    assert "Deleted the event logs of 2 run(s) from Redis." in out and err == ""
    client.delete(*(KEY_PREFIX + run_id for run_id in recent.run_ids))


def test_redis_unreachable_is_said_and_the_rows_go_anyway(alice, settings):
    settings.REDIS_URL = f"redis://:secret-password@127.0.0.1:{free_port()}/0"  # nobody listens there
    stored = [full_conversation(alice, logs=False) for _ in range(3)]
    for each in stored:
        age(each, 400)

    out, err = purge("--older-than-days", "30", "--batch-size", "1")

    assert not Conversation.objects.exists() and "Deleted 3 conversation(s)" in out
    assert "Redis could not be reached (127.0.0.1:" in err and "the event logs of 6 run(s) were not deleted" in err
    assert "secret-password" not in err


@pytest.mark.asyncio
async def test_open_tabs_on_a_purged_conversation_are_told_it_is_gone(conversation, tabs):
    tab = await tabs()
    await database_sync_to_async(age)(conversation, 400)

    await sync_to_async(purge)("--older-than-days", "30")

    output = await asyncio.wait_for(tab.communicator.receive_output(timeout=5), 6)
    assert output == {"type": "websocket.close", "code": CLOSE_GONE}


def test_the_cutoff_is_the_last_activity_not_the_creation(alice):
    stored = full_conversation(alice)
    age(stored, 400)
    Conversation.objects.filter(pk=stored.pk).update(updated=timezone.now() - timedelta(days=29))  # renamed lately

    purge("--older-than-days", "30")

    assert Conversation.objects.filter(pk=stored.pk).exists()
