"""A conversation written out for its owner: JSON (everything stored) or Markdown (to read)."""

from __future__ import annotations

import json
from typing import Any

from django.utils.text import slugify

from conversations.models import Conversation, Message
from conversations.selectors import message_list, message_payload

EXPORT_FORMATS = ("md", "json")
UNTITLED = "Untitled conversation"


def conversation_export_data(*, conversation: Conversation) -> dict[str, Any]:
    """The conversation and its messages (with tool steps and usage), as the JSON export holds them."""
    return {
        "id": conversation.pk,
        "title": conversation.title,
        "assistant": conversation.assistant_id,
        "created": conversation.created.isoformat(),
        "messages": [message_payload(m) for m in message_list(conversation=conversation)],
    }


def conversation_export_markdown(*, conversation: Conversation) -> str:
    """The conversation as Markdown: a heading per message, tool calls as fenced JSON."""
    lines = [f"# {conversation.title or UNTITLED}", ""]
    lines += [f"Assistant: {conversation.assistant_id} · started {conversation.created:%Y-%m-%d %H:%M} UTC", ""]
    for message in message_list(conversation=conversation):
        lines += _message_markdown(message)
    return "\n".join(lines).rstrip() + "\n"


def conversation_export_filename(*, conversation: Conversation, export_format: str) -> str:
    """A download name such as `conversation-7-what-is-10-10.md`."""
    slug = slugify(conversation.title)[:50].strip("-")
    stem = f"conversation-{conversation.pk}" + (f"-{slug}" if slug else "")
    return f"{stem}.{export_format}"


def _message_markdown(message: Message) -> list[str]:
    heading = "## You" if message.role == Message.Role.USER else "## Assistant"
    lines = [heading, ""]
    for step in message.tool_steps:
        lines += [f"Tool call `{step.get('name', '?')}`:", "", "```json", json.dumps(step, indent=2), "```", ""]
    if message.content:
        lines += [message.content, ""]
    if message.role == Message.Role.ASSISTANT and message.status != Message.Status.COMPLETED:
        lines += [f"*({message.status}{': ' + message.error if message.error else ''})*", ""]
    return lines
