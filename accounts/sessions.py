"""Ending a user's sessions, and telling their open sockets: the actions behind "log out other
sessions" and a password changed or reset (the pages in `views.py` only call them)."""

from __future__ import annotations

from importlib import import_module

from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.db import transaction
from django.utils import timezone

from conversations import live


def other_sockets_end(user_id: int) -> None:
    """Once the change is stored, each of the user's sockets checks its session at once: those whose
    session ended close (4401) now rather than at their next recheck."""
    transaction.on_commit(lambda: async_to_sync(live.sessions_changed_notify)(user_id))


def other_sessions_end(*, user_id: int, keep: str | None) -> int:
    """Delete every stored session of the user but `keep` (a session key), tell their sockets; how many ended.

    Sessions are not indexed by user, so this reads every unexpired session once.
    """
    model = import_module(settings.SESSION_ENGINE).SessionStore.get_model_class()
    ended = [
        session.session_key
        for session in model.objects.filter(expire_date__gt=timezone.now()).exclude(session_key=keep).iterator()
        if str(session.get_decoded().get(SESSION_KEY)) == str(user_id)
    ]
    model.objects.filter(session_key__in=ended).delete()
    other_sockets_end(user_id)
    return len(ended)
