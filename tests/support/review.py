"""Staff review in tests: stored turns to review, the admin's pages and what its list finds."""

from __future__ import annotations

import datetime as dt

from django.urls import reverse

from conversations.models import Conversation, Message
from tests.messages import message_append

CHANGELIST = "admin:conversations_conversation_changelist"


def add_turn(conversation: Conversation, question: str, answer: dict, *, when: dt.datetime | None = None) -> Message:
    """A user message and its answer (fields of `answer` as given); the answer."""
    asked = message_append(conversation, role="user", content=question)
    defaults = {"content": "", "status": "completed", "model": "gpt-4o-mini", "tool_steps": [], "usage": {}}
    answered = message_append(conversation, role="assistant", **{**defaults, **answer})
    if when is not None:
        Message.objects.filter(pk__in=[asked.pk, answered.pk]).update(created=when)
    return answered


def transcript_url(conversation: Conversation) -> str:
    return reverse("admin:conversations_conversation_change", args=[conversation.pk])


def found(client, **params) -> list[int]:
    """The ids of the conversations the admin's list shows for the filters `params`."""
    response = client.get(reverse(CHANGELIST), params)
    assert response.status_code == 200
    return [c.pk for c in response.context["cl"].result_list]
