"""What every page's header needs of the signed-in user's settings: a context processor."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from conversations.selectors import preferences_for_user


def preferences(request: HttpRequest) -> dict[str, Any]:
    """`preferences`: the signed-in user's settings (display name, theme), read once per request;
    None for a visitor or a user who never saved any."""
    if not hasattr(request, "_preferences"):
        user = getattr(request, "user", None)
        request._preferences = preferences_for_user(user=user) if user is not None else None
    return {"preferences": request._preferences}
