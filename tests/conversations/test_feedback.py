"""Feedback on answers: stored once per answer and changeable, carried by the messages the page
receives, and seen by staff in the transcript and the conversation list's filter."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from django.urls import reverse

from conversations.models import Conversation, Feedback, Message
from conversations.runs import conversation_snapshot
from conversations.selectors import message_list, message_payload
from conversations.services import AnswerGenerating, BadFeedback, feedback_set
from tests.support.review import CHANGELIST, add_turn, found, transcript_url
from tests.support.users import make_staff, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def answered(alice) -> Message:
    conversation = Conversation.objects.create(owner=alice, title="Sums")
    return add_turn(conversation, "What is 2 + 2?", {"content": "It is 5."})


def test_feedback_is_one_row_per_answer_and_a_later_one_replaces_it(alice, answered):
    first = feedback_set(message=answered, user=alice, rating=-1, comment="Wrong.")
    second = feedback_set(message=answered, user=alice, rating=1, comment="")

    assert Feedback.objects.count() == 1
    assert first.pk == second.pk
    stored = Feedback.objects.get()
    assert (stored.rating, stored.comment) == (1, "")
    assert stored.created == first.created and stored.updated >= first.updated


def test_an_answer_being_written_cannot_be_rated(alice, answered):
    Message.objects.filter(pk=answered.pk).update(status=Message.Status.GENERATING)

    with pytest.raises(AnswerGenerating):
        feedback_set(message=answered, user=alice, rating=1)
    assert not Feedback.objects.exists()


@pytest.mark.parametrize("rating", [0, 2, True, "1", None])
def test_only_1_and_minus_1_are_ratings(alice, answered, rating):
    with pytest.raises(BadFeedback):
        feedback_set(message=answered, user=alice, rating=rating)


def test_the_message_payload_carries_the_owners_feedback(alice, answered):
    feedback_set(message=answered, user=alice, rating=-1, comment="It is 4.")

    payloads = [message_payload(m) for m in message_list(conversation=answered.conversation)]

    assert payloads[0]["feedback"] is None  # the question
    assert payloads[1]["feedback"]["rating"] == -1
    assert payloads[1]["feedback"]["comment"] == "It is 4."


def test_the_snapshot_a_tab_receives_carries_the_feedback(alice, answered):
    feedback_set(message=answered, user=alice, rating=1, comment="")

    snapshot = async_to_sync(conversation_snapshot)(answered.conversation)

    assert snapshot["messages"][-1]["feedback"]["rating"] == 1


def test_the_transcript_shows_each_answers_feedback_and_escapes_the_comment(client, alice, answered):
    feedback_set(message=answered, user=alice, rating=-1, comment="Wrong <script>alert(1)</script>")
    client.force_login(make_staff("reviewer", "view_conversation", "view_message"))

    html = client.get(transcript_url(answered.conversation)).content.decode()

    assert 'data-testid="feedback" data-rating="-1"' in html
    assert "👎" in html
    assert "Wrong &lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>alert(1)" not in html
    assert 'data-testid="feedback-totals"' in html


def test_an_answer_without_feedback_shows_none(client, answered):
    client.force_login(make_staff("reviewer", "view_conversation", "view_message"))

    html = client.get(transcript_url(answered.conversation)).content.decode()

    assert 'data-testid="feedback"' not in html


def test_the_feedback_filter_finds_conversations_with_a_thumbs_down(client, alice, answered):
    bob = make_user("bob")
    liked = Conversation.objects.create(owner=bob, title="Liked")
    feedback_set(message=add_turn(liked, "2 + 2?", {"content": "4"}), user=bob, rating=1)
    Conversation.objects.create(owner=bob, title="Unrated")
    feedback_set(message=answered, user=alice, rating=-1, comment="Wrong.")
    client.force_login(make_staff("reviewer", "view_conversation", "view_message"))

    assert found(client, feedback="down") == [answered.conversation_id]
    assert found(client, feedback="up") == [liked.pk]
    assert found(client, feedback="comment") == [answered.conversation_id]
    assert "?feedback=down" in client.get(reverse(CHANGELIST)).content.decode()


def test_the_payloads_read_the_feedback_in_one_query_however_many_answers(alice, answered, django_assert_num_queries):
    for n in range(5):
        feedback_set(message=add_turn(answered.conversation, f"{n}?", {"content": str(n)}), user=alice, rating=1)

    with django_assert_num_queries(3):  # the branch on screen, its messages, the feedback of all of them
        payloads = [message_payload(m) for m in message_list(conversation=answered.conversation, limit=500)]

    ratings = [p["feedback"] and p["feedback"]["rating"] for p in payloads if p["role"] == "assistant"]
    assert ratings == [None, 1, 1, 1, 1, 1]
