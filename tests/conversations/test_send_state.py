"""What a run start reads in its transaction: the leaf and the owner's limits (one query), and the
history the model is given (one walk up the branch, which stops once it has enough)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import Group

from agent_runtime.history import HistoryTurn
from conversations.models import Budget, Conversation, Message
from conversations.selectors import SendState, history_for_agent, send_state, user_retry_after
from tests.messages import message_append

pytestmark = pytest.mark.django_db(transaction=True)

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
WINDOW_START = NOW - timedelta(minutes=1)


def answer_at(conversation: Conversation, created: datetime, **fields) -> Message:
    message = message_append(conversation, role=Message.Role.ASSISTANT, content="an answer", **fields)
    Message.objects.filter(pk=message.pk).update(created=created)
    return message


def test_send_state_counts_the_owners_recent_and_streaming_answers_in_every_conversation(alice, bob):
    first, second = Conversation.objects.create(owner=alice), Conversation.objects.create(owner=alice)
    others = Conversation.objects.create(owner=bob)
    answer_at(first, NOW - timedelta(seconds=90))  # before the window
    answer_at(first, NOW - timedelta(seconds=30))
    message_append(first, role=Message.Role.USER, content="a question")  # questions do not count
    Message.objects.filter(conversation=first, role=Message.Role.USER).update(created=NOW - timedelta(seconds=5))
    answer_at(second, NOW - timedelta(seconds=10), status=Message.Status.GENERATING)
    answer_at(others, NOW - timedelta(seconds=10), status=Message.Status.GENERATING)  # bob's

    state = send_state(user_id=alice.pk, conversation_id=first.pk, window_start=WINDOW_START)

    newest = Message.objects.filter(conversation=first).order_by("-id").first()
    assert state == SendState(leaf_id=newest.pk, recent_answers=2, streaming=1, model="", has_budget=False)


def test_send_state_of_a_new_conversation_has_no_leaf(alice):
    conversation = Conversation.objects.create(owner=alice)

    state = send_state(user_id=alice.pk, conversation_id=conversation.pk, window_start=WINDOW_START)

    assert state == SendState(leaf_id=None, recent_answers=0, streaming=0, model="", has_budget=False)


def test_send_state_reads_the_model_choice_and_whether_a_budget_of_the_owner_or_a_group_applies(alice, bob):
    conversation = Conversation.objects.create(owner=alice, model="gpt-4o")
    read = lambda: send_state(user_id=alice.pk, conversation_id=conversation.pk, window_start=WINDOW_START)  # noqa: E731
    assert (read().model, read().has_budget) == ("gpt-4o", False)

    team = Group.objects.create(name="team")
    Budget.objects.create(group=team, tokens_per_day=1000)
    assert read().has_budget is False  # not alice's group yet
    alice.groups.add(team)
    assert read().has_budget is True
    alice.groups.remove(team)
    Budget.objects.create(user=bob, tokens_per_day=1000)
    assert read().has_budget is False  # bob's own
    Budget.objects.create(user=alice, tokens_per_month=0)
    assert read().has_budget is True


def test_over_the_rate_the_wait_ends_when_the_oldest_counted_answer_leaves_the_window(alice):
    conversation = Conversation.objects.create(owner=alice)
    for seconds_ago in (50, 30, 10):
        answer_at(conversation, NOW - timedelta(seconds=seconds_ago))
    state = send_state(user_id=alice.pk, conversation_id=conversation.pk, window_start=WINDOW_START)

    def wait(per_minute: int, concurrent: int = 10) -> int | None:
        return user_retry_after(
            user_id=alice.pk,
            state=state,
            messages_per_minute=per_minute,
            concurrent_runs=concurrent,
            window_start=WINDOW_START,
        )

    assert wait(4) is None
    assert wait(3) == 10  # the answer of 50 s ago leaves the window in 10 s
    assert wait(2) == 30  # two may stand: the second newest (30 s ago) must leave
    assert wait(4, concurrent=0) == 5  # too many streaming: the fixed wait


def test_the_history_keeps_the_last_answered_messages_of_the_branch_and_leaves_empty_answers_out(alice):
    conversation = Conversation.objects.create(owner=alice)
    expected = []
    for turn in range(12):
        question = message_append(conversation, role=Message.Role.USER, content=f"question {turn}")
        expected.append(HistoryTurn(role="user", content=question.content))
        if turn % 3 == 1:  # a failed answer: stored empty, never given to the model
            message_append(conversation, role=Message.Role.ASSISTANT, content="", status=Message.Status.ERROR)
        else:
            answer = message_append(conversation, role=Message.Role.ASSISTANT, content=f"answer {turn}")
            expected.append(HistoryTurn(role="assistant", content=answer.content))
    leaf = Message.objects.filter(conversation=conversation).order_by("-id").first()
    # another version of the last answer, not on the branch
    Message.objects.create(
        conversation=conversation, parent=leaf.parent, role=Message.Role.ASSISTANT, content="another version"
    )

    for limit in (1, 5, 7, len(expected), 100):
        history = history_for_agent(conversation=conversation, parent_id=leaf.pk, limit=limit)
        assert history == expected[-limit:], limit


def test_the_history_walks_past_a_run_of_failed_answers(alice):
    conversation = Conversation.objects.create(owner=alice)
    message_append(conversation, role=Message.Role.USER, content="the first question")
    message_append(conversation, role=Message.Role.ASSISTANT, content="the first answer")
    for _ in range(4):
        message_append(conversation, role=Message.Role.USER, content="again?")
        message_append(conversation, role=Message.Role.ASSISTANT, content="", status=Message.Status.ERROR)
    leaf = Message.objects.filter(conversation=conversation).order_by("-id").first()

    contents = [m.content for m in history_for_agent(conversation=conversation, parent_id=leaf.pk, limit=5)]
    assert contents == ["the first answer", "again?", "again?", "again?", "again?"]
    contents = [m.content for m in history_for_agent(conversation=conversation, parent_id=leaf.pk, limit=4)]
    assert contents == ["again?"] * 4
