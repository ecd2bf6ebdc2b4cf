"""Writes of the API app: creating, using and revoking personal API tokens."""

from __future__ import annotations

import secrets
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.contrib.auth.models import AbstractBaseUser

from api.models import ALL_SCOPES, ApiToken, Scope, token_digest

TOKEN_PREFIX = "acht_"
"""Every token starts with this, so that people and secret scanners recognise one."""
VISIBLE_LENGTH = len(TOKEN_PREFIX) + 6
"""How much of a token is stored in clear (and shown) to tell tokens apart."""
LAST_USED_PRECISION = timedelta(minutes=1)
"""`last_used` is written at most this often per token (not on every request)."""
DEFAULT_TOKEN_LIFETIME = timedelta(days=90)
"""How long a new token works unless its creator chooses otherwise."""
UNKNOWN_SCOPE = "Unknown API token scope {scope!r}: the scopes are read, send and approve."


@dataclass(frozen=True)
class CreatedToken:
    """A new token: its row, and the secret itself, which is shown once and never stored."""

    token: ApiToken
    secret: str


def api_token_create(
    *,
    user: AbstractBaseUser,
    name: str,
    lifetime: timedelta | None = DEFAULT_TOKEN_LIFETIME,
    scopes: Collection[str] = ALL_SCOPES,
) -> CreatedToken:
    """Create a token for `user`, working for `lifetime` (None: until revoked), allowed `scopes` (`read`
    is always among them: sending streams the answer back, and deciding needs the runs seen);
    stores only its hash and prefix. ValueError for an unknown scope."""
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user,
        name=name.strip()[:100],
        prefix=secret[:VISIBLE_LENGTH],
        digest=token_digest(secret),
        expires=datetime.now(UTC) + lifetime if lifetime is not None else None,
        scopes=" ".join(_with_read(scopes)),
    )
    return CreatedToken(token=token, secret=secret)


def _with_read(scopes: Collection[str]) -> list[str]:
    """`scopes` and `read`, in the order of `Scope`; ValueError for an unknown one."""
    for scope in scopes:
        if scope not in ALL_SCOPES:
            raise ValueError(UNKNOWN_SCOPE.format(scope=scope))
    chosen = {Scope.READ, *scopes}
    return [scope for scope in ALL_SCOPES if scope in chosen]


def api_token_revoke(*, user: AbstractBaseUser, token_id: int) -> bool:
    """Revoke one of `user`'s active tokens; False when there is no such token."""
    updated = ApiToken.objects.filter(pk=token_id, user=user, revoked__isnull=True).update(revoked=datetime.now(UTC))
    return bool(updated)


def api_token_mark_used(*, token: ApiToken, now: datetime) -> None:
    """Record that the token was just used (at most once per `LAST_USED_PRECISION`)."""
    if token.last_used is not None and now - token.last_used < LAST_USED_PRECISION:
        return
    ApiToken.objects.filter(pk=token.pk).update(last_used=now)
    token.last_used = now
