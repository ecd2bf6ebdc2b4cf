"""A conversation's earlier turns, as a run is given them: plain data, not LangChain's messages.

The chat reads the branch a question follows and hands it over as `HistoryTurn`s; only the
runtime knows that the model gets them as LangChain messages (`as_messages`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

USER = "user"
ASSISTANT = "assistant"

Role = Literal["user", "assistant"]


@dataclass(frozen=True, slots=True)
class HistoryTurn:
    """One earlier message: who said it (the user or the assistant) and its text."""

    role: Role
    content: str

    def __post_init__(self) -> None:
        if self.role not in (USER, ASSISTANT):
            raise ValueError(f"a history turn is the {USER!r}'s or the {ASSISTANT!r}'s, not {self.role!r}")


def as_messages(history: Iterable[HistoryTurn]) -> list[BaseMessage]:
    """The turns as the model is sent them: the user's as human messages, the assistant's as AI ones."""
    return [
        HumanMessage(content=turn.content) if turn.role == USER else AIMessage(content=turn.content) for turn in history
    ]
