"""A user's own data: everything of theirs as one zip, and the deletion of their account.

The zip holds, per conversation, a JSON file with every message in every version (questions,
answers, regenerated answers, edited questions, as the `parent` tree stores them) with tool steps,
usage, status, times, feedback and approvals, and a Markdown file of the branch shown
(`conversations.export`); then `profile.json` (never a password hash, a token's secret or its
digest), `preferences.json` (the settings page's) and `README.txt`. It is written into a spooled
temporary file (memory up to `SPOOL_IN_MEMORY`, disk past it), so a large account never sits whole
in memory.

Deleting an account stops its answers being written, then deletes the user: the cascade takes
every row of theirs, and the user `pre_delete` receivers (`conversations.deletion`,
`review.pseudonyms`) delete their runs' event logs, tell their open tabs and pseudonymise the
read record. Their login sessions are deleted with them.
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from tempfile import SpooledTemporaryFile
from typing import IO, Any

from asgiref.sync import async_to_sync, sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from accounts.sessions import sessions_delete
from conversations import runs
from conversations.branches import branch_ids
from conversations.export import conversation_export_filename, conversation_export_markdown
from conversations.models import Conversation, Feedback, Message, Preferences, ToolApproval
from conversations.selectors import preferences_for_user

SPOOL_IN_MEMORY = 8 * 1024 * 1024
"""Bytes of the zip kept in memory before it moves to a temporary file on disk."""
MAX_CONVERSATIONS = 20_000
MAX_MESSAGES = 1_000_000
"""Past these, the download is refused (the page says to ask the operators) rather than built."""
CHUNK = 64 * 1024
LONE_SURROGATE = re.compile("[\ud800-\udfff]")

TOO_LARGE = (
    "Your account holds more than {conversations:,} conversations or {messages:,} messages, more than "
    "this page can pack into one download. Delete some conversations, or ask the people who run this "
    "site for a copy."
)
README = """\
Everything stored for {username} in Agent Chat, as of {when} UTC.

profile.json
    Your username, email, when you joined, and your API tokens' names, scopes and dates.
    Never your password (only a hash of it is stored, and it is not included) and never a
    token's secret (it was shown once, when you created it).

preferences.json
    Your settings: display name, theme and default assistant (empty until you save them).

conversations/<id>-<title>.json  (one per conversation)
    The conversation and every message in it, in every version: your questions, edited
    questions, answers and regenerated answers. Each message names the one it follows
    ("parent_id"); messages with the same parent are versions of each other, and
    "on_branch_shown" marks the versions the page shows. With each answer: its status, the
    model, its tool steps (calls, arguments, results), usage (tokens), its times, your
    feedback and the tool calls that waited for approval, with the decision.

conversations/<id>-<title>.md  (one per conversation)
    The same conversation to read: the branch the page shows, as Markdown.

{count} conversation(s), {messages} message(s).
"""


@dataclass(frozen=True)
class Counts:
    """How much of an account there is."""

    conversations: int
    messages: int


def account_counts(*, user: AbstractBaseUser) -> Counts:
    """The user's conversations and messages (every version)."""
    return Counts(
        conversations=Conversation.objects.filter(owner=user).count(),
        messages=Message.objects.filter(conversation__owner=user).count(),
    )


def export_too_large(*, counts: Counts) -> str | None:
    """Why the download is refused, or None when it can be built."""
    if counts.conversations > MAX_CONVERSATIONS or counts.messages > MAX_MESSAGES:
        return TOO_LARGE.format(conversations=MAX_CONVERSATIONS, messages=MAX_MESSAGES)
    return None


def export_filename(*, user: AbstractBaseUser, now: datetime | None = None) -> str:
    """`agentchat-<username>-<date>.zip`, the username made safe for a file name."""
    day = (now or timezone.now()).date().isoformat()
    name = slugify(user.get_username()) or f"user-{user.pk}"
    return f"agentchat-{name}-{day}.zip"


def export_zip(*, user: AbstractBaseUser, now: datetime | None = None) -> IO[bytes]:
    """Write the user's zip into a spooled temporary file, rewound; the caller closes it."""
    now = now or timezone.now()
    spool: IO[bytes] = SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115 (the response closes it)
    try:
        count = messages = 0
        with zipfile.ZipFile(spool, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            _write(archive, "profile.json", _json(profile_data(user=user)))
            _write(archive, "preferences.json", _json(preferences_data(user=user)))
            for conversation in Conversation.objects.filter(owner=user).order_by("pk").iterator(chunk_size=200):
                data = conversation_data(conversation=conversation)
                stem = conversation_export_filename(conversation=conversation, export_format="")[:-1]
                stem = stem.removeprefix("conversation-")
                _write(archive, f"conversations/{stem}.json", _json(data))
                conversation.owner = user
                _write(
                    archive, f"conversations/{stem}.md", _text(conversation_export_markdown(conversation=conversation))
                )
                count += 1
                messages += len(data["messages"])
            readme = README.format(
                username=user.get_username(), when=f"{now:%Y-%m-%d %H:%M}", count=count, messages=messages
            )
            _write(archive, "README.txt", _text(readme))
        spool.seek(0)
        return spool
    except BaseException:
        spool.close()
        raise


def export_chunks(spool: IO[bytes]) -> AsyncIterator[bytes]:
    """The zip's bytes for a streaming response, read in a thread; the file is closed at the end."""

    async def chunks() -> AsyncIterator[bytes]:
        try:
            while data := await sync_to_async(spool.read, thread_sensitive=False)(CHUNK):
                yield data
        finally:
            spool.close()

    return chunks()


def profile_data(*, user: AbstractBaseUser) -> dict[str, Any]:
    """Who the user is, and their API tokens by name: never a password hash, token secret or digest."""
    tokens = getattr(user, "api_tokens", None)
    return {
        "username": user.get_username(),
        "email": getattr(user, "email", ""),
        "first_name": getattr(user, "first_name", ""),
        "last_name": getattr(user, "last_name", ""),
        "date_joined": _when(getattr(user, "date_joined", None)),
        "last_login": _when(getattr(user, "last_login", None)),
        "api_tokens": [
            {
                "name": token.name,
                "scopes": token.scopes.split(),
                "created": _when(token.created),
                "expires": _when(token.expires),
                "revoked": _when(token.revoked),
                "last_used": _when(token.last_used),
            }
            for token in (tokens.order_by("created", "pk") if tokens is not None else [])
        ],
    }


def preferences_data(*, user: AbstractBaseUser) -> dict[str, Any]:
    """The user's settings as the settings page shows them; the defaults when they never saved any."""
    preferences = preferences_for_user(user=user) or Preferences(user=user)
    return {
        "display_name": preferences.display_name,
        "theme": preferences.theme,
        "default_assistant": preferences.default_assistant_id or None,
    }


def conversation_data(*, conversation: Conversation) -> dict[str, Any]:
    """A conversation with every message in every version, and what belongs to each."""
    shown, _tree = branch_ids(conversation.pk)
    on_branch = set(shown)
    owner_id = conversation.owner_id
    feedback: dict[int, Feedback] = {
        f.message_id: f for f in Feedback.objects.filter(message__conversation=conversation, user_id=owner_id)
    }
    approvals: dict[int, list[dict[str, Any]]] = {}
    for approval in ToolApproval.objects.filter(conversation=conversation).order_by("requested_at", "pk"):
        approvals.setdefault(approval.message_id, []).append(
            {
                "tool": approval.tool,
                "call_id": approval.call_id,
                "arguments": approval.arguments,
                "requested_at": _when(approval.requested_at),
                "decision": approval.decision or None,
                "decided_at": _when(approval.decided_at),
                "decided_by_you": approval.decided_by_id == owner_id if approval.decided_by_id else None,
            }
        )
    messages = [
        _message_data(m, on_branch=m.pk in on_branch, feedback=feedback.get(m.pk), approvals=approvals.get(m.pk, []))
        for m in Message.objects.filter(conversation=conversation).order_by("created", "pk").iterator()
    ]
    return {
        "id": conversation.pk,
        "title": conversation.title,
        "assistant": conversation.assistant_id,
        "created": _when(conversation.created),
        "updated": _when(conversation.updated),
        "branch_shown": shown,
        "messages": messages,
    }


def _message_data(
    message: Message, *, on_branch: bool, feedback: Feedback | None, approvals: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "id": message.pk,
        "parent_id": message.parent_id,
        "role": message.role,
        "content": message.content,
        "status": message.status,
        "on_branch_shown": on_branch,
        "created": _when(message.created),
        "started": _when(message.started),
        "finished": _when(message.finished),
        "model": message.model,
        "error": message.error,
        "tool_steps": message.tool_steps,
        "usage": message.usage,
        "first_token_ms": message.first_token_ms,
        "duration_ms": message.duration_ms,
        "run_id": message.run_id,
        "client_id": message.client_id,
        "feedback": (
            {
                "rating": feedback.rating,
                "comment": feedback.comment,
                "created": _when(feedback.created),
                "updated": _when(feedback.updated),
            }
            if feedback is not None
            else None
        ),
        "approvals": approvals,
    }


def _when(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _json(data: Any) -> bytes:
    # ensure_ascii: lone surrogates and control characters become \u escapes, always valid JSON.
    return json.dumps(data, ensure_ascii=True, indent=2).encode("ascii")


def _text(text: str) -> bytes:
    # A lone surrogate cannot be UTF-8: it is written as U+FFFD (the JSON file keeps it exactly).
    return LONE_SURROGATE.sub("\ufffd", text).encode("utf-8")


def _write(archive: zipfile.ZipFile, name: str, data: bytes) -> None:
    archive.writestr(zipfile.ZipInfo(name, date_time=timezone.now().timetuple()[:6]), data, zipfile.ZIP_DEFLATED)


# --- deleting an account --------------------------------------------------------------------------


def superuser_would_be_last(*, user: AbstractBaseUser) -> bool:
    """Whether deleting `user` would leave no active superuser."""
    if not getattr(user, "is_superuser", False):
        return False
    others = get_user_model().objects.filter(is_superuser=True, is_active=True).exclude(pk=user.pk)
    return not others.exists()


def account_delete(*, user: AbstractBaseUser) -> None:
    """Stop the user's answers being written, then delete the user with everything of theirs and their
    login sessions. Their tabs are told once the deletion commits (`conversations.deletion`)."""
    streaming = Message.objects.filter(conversation__owner=user, status=Message.Status.GENERATING)
    for conversation in Conversation.objects.filter(pk__in=streaming.values("conversation_id")):
        if not runs.run_stop_threadsafe(conversation.pk):
            async_to_sync(runs.run_stop)(conversation)
    with transaction.atomic():
        user_id = user.pk
        user.delete()
        sessions_delete(user_id=user_id)
