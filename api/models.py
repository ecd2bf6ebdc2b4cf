"""Personal API tokens: programs act as their user with `Authorization: Bearer <token>`."""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.db import models
from django.utils import timezone


class Scope(models.TextChoices):
    """What a token may do. Every API route needs one (`api.auth.scoped`); the session cookie has them all."""

    READ = "read", "Read: list and read conversations, export them, follow their runs"
    SEND = "send", "Send: create, send, edit, regenerate, choose versions, rename, rate answers"
    APPROVE = "approve", "Approve: approve or deny the tool calls waiting in your runs"


ALL_SCOPES: tuple[str, ...] = tuple(Scope.values)
"""Every scope, in order; what tokens made before scopes existed can do."""


class ApiToken(models.Model):
    """A user's token. Only its SHA-256 is stored; `prefix` (its first characters) names it on pages."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, help_text="The token's first characters, shown to tell tokens apart.")
    digest = models.CharField(max_length=64, unique=True, help_text="SHA-256 of the token, hex.")
    created = models.DateTimeField(auto_now_add=True)
    last_used = models.DateTimeField(null=True, blank=True)
    revoked = models.DateTimeField(null=True, blank=True)
    expires = models.DateTimeField(null=True, blank=True, help_text="When the token stops working; empty: never.")
    scopes = models.CharField(
        max_length=64, help_text="What the token may do, space-separated: read, send, approve (fixed at creation)."
    )

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [models.Index(fields=["user", "-created"], name="api_token_user_recent")]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        """Whether the token still authenticates: not revoked, not expired."""
        return self.revoked is None and (self.expires is None or self.expires > timezone.now())

    @property
    def scope_list(self) -> list[str]:
        """The token's scopes, in the order of `Scope`."""
        held = set(self.scopes.split())
        return [scope for scope in ALL_SCOPES if scope in held]

    def allows(self, scope: str | None) -> bool:
        """Whether the token may do what `scope` covers (None, a route that declares none: never)."""
        return scope is not None and scope in self.scopes.split()


def token_digest(secret: str) -> str:
    """What is stored of a token: the hex SHA-256 of the whole token string."""
    return hashlib.sha256(secret.encode()).hexdigest()
