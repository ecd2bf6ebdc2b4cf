"""The chat app's configuration: its system check, and what a user's deletion also deletes. Warming a
process up is `conversations.warmup`'s."""

from __future__ import annotations

from django.apps import AppConfig
from django.core import checks
from django.core.exceptions import ImproperlyConfigured


class ConversationsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "conversations"

    def ready(self) -> None:
        from django.contrib.auth import get_user_model
        from django.db.models.signals import pre_delete

        from conversations.deletion import user_leftovers_forget

        checks.register(check_assistants)
        # A user's conversations go with them by the cascade; what lives outside the database goes too.
        pre_delete.connect(user_leftovers_forget, sender=get_user_model(), dispatch_uid="conversations.user_leftovers")


def check_assistants(app_configs: object = None, **kwargs: object) -> list[checks.CheckMessage]:
    """`manage.py check` (and every server start) fails on an `AGENT_ASSISTANTS` that does not load."""
    from conversations.assistants import assistant_registry

    try:
        assistant_registry()
    except (ImproperlyConfigured, ImportError) as error:
        return [checks.Error(str(error), hint="See docs/assistants.md.", id="conversations.E001")]
    return []
