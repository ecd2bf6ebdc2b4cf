"""Reads of the API app: who a token belongs to, whether it still works, and a user's tokens."""

from __future__ import annotations

from datetime import UTC, datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Q, QuerySet

from api.models import ApiToken, token_digest


def _working_tokens() -> QuerySet[ApiToken]:
    """Tokens that authenticate now: not revoked, not expired, their user active."""
    not_expired = Q(expires__isnull=True) | Q(expires__gt=datetime.now(UTC))
    return ApiToken.objects.filter(not_expired, revoked__isnull=True, user__is_active=True)


def api_token_authenticate(*, secret: str) -> ApiToken | None:
    """The working token whose hash matches `secret`, with its user; None otherwise (unknown, revoked, expired)."""
    if not secret:
        return None
    return _working_tokens().select_related("user").filter(digest=token_digest(secret)).first()


def api_token_is_working(*, token_id: int) -> bool:
    """Whether the token still authenticates, as `api_token_authenticate` would decide now."""
    return _working_tokens().filter(pk=token_id).exists()


def api_token_list_for_user(*, user: AbstractBaseUser) -> QuerySet[ApiToken]:
    """The user's tokens that still work, newest first."""
    return _working_tokens().filter(user=user).order_by("-created", "-id")
