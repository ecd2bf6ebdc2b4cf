"""Reads of the API app: who a token belongs to, and a user's tokens."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from api.models import ApiToken, token_digest


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
