"""The built-in History assistant: finds and reads the asking user's own earlier conversations.

It is also the worked example of the user-scoped pattern: every query is filtered by `self.user`,
which the product sets and the model cannot; a conversation id the model makes up that is not
the user's own reads as "no such conversation".
"""

from __future__ import annotations

from datetime import datetime

from django.db.models import Q
from django.utils import timezone
from django.utils.timesince import timesince
from langchain_core.tools import ToolException

from agent_runtime.assistants import Assistant, tool
from conversations.actions import Refused, search_check
from conversations.models import Conversation, Message

SEARCH_LIMIT = 10
SNIPPET_LENGTH = 160
READ_LIMIT = 40
NOTHING_FOUND = "No earlier conversation of yours mentions {query!r}."
NO_SUCH_CONVERSATION = "You have no conversation {conversation_id}."
EMPTY_QUERY = "Say what to search for."


class HistoryAssistant(Assistant):
    """Searches and reads your own earlier conversations ("what did I ask about X last week?")."""

    id = "history"
    name = "History"
    description = "Finds and reads your own earlier conversations."
    examples = (
        ("What did I ask about pancakes last week?", "Searches your own conversations"),
        ("Find my conversations about counting", "Only ever yours, never anyone else's"),
    )
    instructions = (
        "You help the user find what they discussed in their earlier conversations. Search with "
        "search_my_conversations, read one with read_my_conversation, and quote what you found."
    )

    @tool
    def search_my_conversations(self, query: str) -> str:
        """Search the user's earlier conversations (titles and messages) for a few words; most recent first."""
        try:
            words = search_check(query=query)
        except Refused as refused:
            raise ToolException(refused.message) from None  # told to the model as it is: it can search again
        if not words:
            return EMPTY_QUERY
        in_title, in_text = Q(), Q()
        for word in words:
            in_title &= Q(title__icontains=word)
            in_text &= Q(content__icontains=word)
        mentioning = Message.objects.filter(in_text, conversation__owner=self.user).values("conversation_id")
        found = (
            Conversation.objects.filter(owner=self.user)
            .exclude(pk=self.conversation_id)
            .filter(in_title | Q(pk__in=mentioning))
            .order_by("-updated", "-id")[:SEARCH_LIMIT]
        )
        lines = [_line(conversation, in_text) for conversation in found]
        return "\n".join(lines) if lines else NOTHING_FOUND.format(query=query)

    @tool
    def read_my_conversation(self, conversation_id: int) -> str:
        """Read one of the user's conversations: its messages, oldest first."""
        conversation = Conversation.objects.filter(pk=conversation_id, owner=self.user).first()
        if conversation is None:
            return NO_SUCH_CONVERSATION.format(conversation_id=conversation_id)
        messages = conversation.messages.exclude(content="").order_by("created", "id")[:READ_LIMIT]
        body = "\n".join(f"{m.role}: {m.content}" for m in messages)
        return f"“{conversation}” ({_ago(conversation.created)}):\n{body}"


def _line(conversation: Conversation, in_text: Q) -> str:
    message = (
        conversation.messages.filter(in_text).order_by("-created").first()
        or conversation.messages.filter(role=Message.Role.USER).first()
    )
    where = f"conversation {conversation.pk}, {_ago(conversation.updated)}"
    if message is None:
        return f"- “{conversation}” ({where})"
    text = " ".join(message.content.split())
    snippet = text if len(text) <= SNIPPET_LENGTH else text[: SNIPPET_LENGTH - 1] + "…"
    who = "you asked" if message.role == Message.Role.USER else "the answer"
    return f"- “{conversation}” ({where}): {who}: {snippet}"


def _ago(moment: datetime) -> str:
    elapsed = timesince(moment, timezone.now()).split(",")[0]
    return "just now" if elapsed.startswith("0\xa0") or elapsed.startswith("0 ") else f"{elapsed} ago"
