"""The chat app's configuration: its system check. Warming a process up is `conversations.warmup`'s."""

from __future__ import annotations

from django.apps import AppConfig
from django.core import checks
from django.core.exceptions import ImproperlyConfigured


class ConversationsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "conversations"

    def ready(self) -> None:
        checks.register(check_assistants)


def check_assistants(app_configs: object = None, **kwargs: object) -> list[checks.CheckMessage]:
    """`manage.py check` (and every server start) fails on an `AGENT_ASSISTANTS` that does not load."""
    from conversations.assistants import assistant_registry

    try:
        assistant_registry()
    except (ImproperlyConfigured, ImportError) as error:
        return [checks.Error(str(error), hint="See docs/assistants.md.", id="conversations.E001")]
    return []
