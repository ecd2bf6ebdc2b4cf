"""Reads of the API app: who a token belongs to, a user's tokens, the answer to a resent message."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from api.models import ApiToken, token_digest
from conversations.models import Conversation, Message


def api_token_authenticate(*, secret: str) -> ApiToken | None:
    """The active token whose hash matches `secret`, with its (active) user; None otherwise."""
    if not secret:
        return None
    return (
        ApiToken.objects.select_related("user")
        .filter(digest=token_digest(secret), revoked__isnull=True, user__is_active=True)
        .first()
    )


def api_token_list_for_user(*, user: AbstractBaseUser) -> QuerySet[ApiToken]:
    """The user's tokens that still work, newest first."""
    return ApiToken.objects.filter(user=user, revoked__isnull=True).order_by("-created", "-id")


def answer_for_client_id(*, conversation: Conversation, client_id: str) -> Message | None:
    """The assistant message answering the user message sent with `client_id`; None if never sent."""
    sent = Message.objects.filter(conversation=conversation, client_id=client_id, role=Message.Role.USER).first()
    if sent is None:
        return None
    return (
        Message.objects.filter(conversation=conversation, role=Message.Role.ASSISTANT, pk__gt=sent.pk)
        .order_by("pk")
        .first()
    )


def conversation_list_recent(*, user: AbstractBaseUser, limit: int) -> list[Conversation]:
    """The user's most recently updated conversations."""
    return list(Conversation.objects.filter(owner=user).order_by("-updated", "-id")[:limit])


def conversation_has_run(*, conversation: Conversation, run_id: str) -> bool:
    """Whether `run_id` is the run of one of the conversation's answers."""
    return Message.objects.filter(conversation=conversation, run_id=run_id).exists()
