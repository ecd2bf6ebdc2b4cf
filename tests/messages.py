"""Stored conversations for tests: messages appended to the branch on screen, as the product does."""

from __future__ import annotations

from typing import Any

from conversations.models import Conversation, Message


def message_append(conversation: Conversation, **fields: Any) -> Message:
    """Store a message following the conversation's newest one, and show it (the new leaf)."""
    newest = Message.objects.filter(conversation=conversation).order_by("-id").first()
    message = Message.objects.create(conversation=conversation, parent=newest, **fields)
    Conversation.objects.filter(pk=conversation.pk).update(leaf=message)
    return message
