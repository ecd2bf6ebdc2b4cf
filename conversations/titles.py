"""Titles of conversations: made by the model from the first exchange, and every title change shown
in the conversation's open tabs (a `title` frame).

Without a model (the offline demo model) or with `AGENT_MODEL_TITLES` off, the title stays the one
made from the first question's text when it was sent (`services.turn_start`). A title the owner chose
is never replaced.
"""

from __future__ import annotations

import asyncio
import logging

from channels.db import database_sync_to_async
from django.conf import settings
from langchain_core.messages import HumanMessage, SystemMessage

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


def title_clean(text: object) -> str:
    """The model's reply as a title: its first line, without quotes or a final full stop, at most
    `TITLE_LENGTH` characters; empty when nothing usable is left."""
    if not isinstance(text, str):
        return ""
    line = next((line for line in clean_text(text).splitlines() if line.strip()), "")
    line = " ".join(line.split()).strip("\"'“”‘’`*# ").removeprefix("Title:").strip().rstrip(".").strip()
    return title_shorten(line)


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
