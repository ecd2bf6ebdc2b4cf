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


def sessions_delete(*, user_id: int, keep: str | None = None) -> int:
    """Delete every stored login session of the user but `keep` (a session key); how many went.

    Database sessions only (cache or cookie sessions stop working with the user or their password).
    Sessions are not indexed by user, so this reads every unexpired session once, in chunks.
    """
    store = import_module(settings.SESSION_ENGINE).SessionStore
    if not hasattr(store, "get_model_class"):
        return 0
    model = store.get_model_class()
    rows = model.objects.filter(expire_date__gt=timezone.now()).exclude(session_key=keep)
    theirs = [
        key
        for key, data in rows.values_list("session_key", "session_data").iterator(chunk_size=2000)
        if str(store().decode(data).get(SESSION_KEY)) == str(user_id)
    ]
    return model.objects.filter(session_key__in=theirs).delete()[0] if theirs else 0


def other_sessions_end(*, user_id: int, keep: str | None) -> int:
    """Delete every stored session of the user but `keep` (a session key), tell their sockets; how many ended."""
    ended = sessions_delete(user_id=user_id, keep=keep)
    other_sockets_end(user_id)
    return ended
