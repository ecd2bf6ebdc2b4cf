"""Titles of conversations: made by the model from the first exchange, and every title change shown
in the conversation's open tabs (a `title` frame).

Without a model (the offline demo model) or with `AGENT_MODEL_TITLES` off, the title stays the one
made from the first question's text when it was sent (`services.turn_start`). A title the owner chose
is never replaced. Titles the product makes are plain text (`title_plain`): no Markdown marks in the
header and the list; a name the owner types is stored as typed.
"""

from __future__ import annotations

import asyncio
import logging
import re

from channels.db import database_sync_to_async
from django.conf import settings
from langchain_core.messages import HumanMessage, SystemMessage
from markdown_it import MarkdownIt
from markdown_it.token import Token

from agent_runtime.llm import ModelConfig, build_chat_model
from agent_runtime.text import clean_text
from conversations import live
from conversations.process import process_state
from conversations.selectors import conversation_title_is_automatic
from conversations.services import conversation_title_auto, title_shorten

logger = logging.getLogger(__name__)

TITLE_INSTRUCTIONS = (
    "Write a short title (2 to 6 words) for the conversation below, in the language of the question. "
    "Answer with the title only: no quotes, no final full stop."
)
EXCERPT_LENGTH = 1500
PLAIN_SOURCE_LENGTH = 2000
"""How much of a text `title_plain` reads: a title is far shorter, and a question may be long."""

# CommonMark with GitHub's tables and ~~strikethrough~~, HTML tags included: what a model may write.
_MARKDOWN = MarkdownIt("commonmark", {"html": False}).enable(["strikethrough", "table"])
_NAME = re.compile(r"\w+")
_QUOTES = "\"'“”‘’ "
_EDGE_MARKS = _QUOTES + "`*"


def title_plain(text: str) -> str:
    """Text without its Markdown, on one line: the words of emphasis, code, links and images (their
    text), headings, quotes, list items and table cells, without their marks. HTML stays as typed:
    the page shows it as text, never as markup.

    Plain text is left as it is (`snake_case`, `2 * 3`); only the first `PLAIN_SOURCE_LENGTH`
    characters are read. Empty when no text is left (a rule `---`).
    """
    parts: list[str] = []
    for token in _MARKDOWN.parse(text[:PLAIN_SOURCE_LENGTH]):
        if token.type == "inline":
            parts.append(_inline_text(token.children or []))
        elif token.type in ("fence", "code_block"):
            parts.append(token.content)
    return " ".join(" ".join(parts).split())


def _inline_text(tokens: list[Token]) -> str:
    text = []
    for index, token in enumerate(tokens):
        start = max(index - 2, 0) if token.nesting < 0 else index
        if token.markup == "__" and _dunder(tokens[start : start + 3]):
            text.append("__")  # `__init__`: a name, not bold
        elif token.type in ("text", "code_inline"):
            text.append(token.content)
        elif token.type == "image":  # its alt text, itself parsed
            text.append(_inline_text(token.children or []))
        elif token.type in ("softbreak", "hardbreak"):
            text.append(" ")
    return "".join(text)


def _dunder(tokens: list[Token]) -> bool:
    """Whether `tokens` are `__`, a name and `__` (`__init__`): CommonMark makes it bold, but it is a name."""
    return (
        len(tokens) == 3
        and (tokens[0].type, tokens[1].type, tokens[2].type) == ("strong_open", "text", "strong_close")
        and _NAME.fullmatch(tokens[1].content) is not None
    )


def _title_trim(line: str, marks: str) -> str:
    """`line` without surrounding `marks`, a `Title:` prefix or a final full stop."""
    return line.strip(marks).removeprefix("Title:").strip(marks).rstrip(".").strip(marks)


def title_clean(text: object) -> str:
    """The model's reply as a title: its first line as plain text (`title_plain`, by way of
    `services.title_shorten`), without quotes or a final full stop, at most `TITLE_LENGTH`
    characters; empty when nothing usable is left."""
    if not isinstance(text, str):
        return ""
    line = next((line for line in clean_text(text).splitlines() if line.strip()), "")
    title = title_shorten(_title_trim(" ".join(line.split()), _QUOTES))  # `**` pairs kept for the parser
    return _title_trim(title, _EDGE_MARKS)  # marks left unpaired, quotes that were inside the Markdown


def title_from_model_start(*, conversation_id: int, question: str, answer: str, config: ModelConfig) -> None:
    """Ask the model for a title in the background (the answer's `done` has gone out already)."""
    state = process_state()
    if state.draining:
        return  # the process is stopping: the title made from the question's text stays
    task = asyncio.create_task(
        title_from_model(conversation_id=conversation_id, question=question, answer=answer, config=config),
        name=f"title-{conversation_id}",
    )
    state.title_tasks.add(task)
    task.add_done_callback(state.title_tasks.discard)


async def title_from_model(*, conversation_id: int, question: str, answer: str, config: ModelConfig) -> str | None:
    """Name the conversation from its first exchange with the model's help, unless its owner named it;
    the tabs see the new title. None when the model could not say (the text title stays)."""
    if not await database_sync_to_async(conversation_title_is_automatic)(conversation_id=conversation_id):
        return None  # named by its owner meanwhile (maybe in another tab): no request
    prompt = f"Question: {question[:EXCERPT_LENGTH]}\n\nAnswer: {answer[:EXCERPT_LENGTH]}"
    try:
        reply = await asyncio.wait_for(
            build_chat_model(config).ainvoke([SystemMessage(TITLE_INSTRUCTIONS), HumanMessage(prompt)]),
            timeout=settings.AGENT_TITLE_TIMEOUT,
        )
    except Exception:
        logger.warning("the model could not title conversation %s", conversation_id, exc_info=True)
        return None
    title = title_clean(getattr(reply, "content", ""))
    if not title:
        return None
    if await database_sync_to_async(conversation_title_auto)(conversation_id=conversation_id, title=title):
        await live.title_changed_notify(conversation_id, title)
        return title
    return None
