"""A conversation's messages as a tree: versions of a message are siblings, the screen shows one branch.

Every message points to the one it follows (`Message.parent`): an answer to its question, a question
to the answer before it. Regenerating an answer adds a sibling answer under the same question; editing
a question adds a sibling question under the same answer. The branch on screen runs from the first
question down to the conversation's `leaf`; the history given to the model is that branch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from conversations.models import Message


@dataclass
class MessageTree:
    """The ids of a conversation's messages and how they hang together (one query, no text)."""

    parent: dict[int, int | None] = field(default_factory=dict)
    children: dict[int | None, list[int]] = field(default_factory=dict)
    leaf_id: int | None = None
    """The conversation's stored leaf when loaded (read fresh: other tabs and processes move it)."""

    @classmethod
    def load(cls, conversation_id: int) -> MessageTree:
        """The tree of the conversation's messages, and its leaf, in one query."""
        tree = cls()
        rows = (
            Message.objects.filter(conversation_id=conversation_id)
            .order_by("id")
            .values_list("id", "parent_id", "conversation__leaf_id")
        )
        for message_id, parent_id, leaf_id in rows:
            tree.parent[message_id] = parent_id
            tree.children.setdefault(parent_id, []).append(message_id)
            tree.leaf_id = leaf_id
        return tree

    def last_id(self) -> int | None:
        """The newest message, or None when there is none."""
        return max(self.parent) if self.parent else None

    def branch(self, leaf_id: int | None) -> list[int]:
        """The ids from the first question down to `leaf_id` (the newest message if unknown)."""
        if leaf_id not in self.parent:
            leaf_id = self.last_id()
        ids: list[int] = []
        seen: set[int] = set()
        while leaf_id is not None and leaf_id not in seen:
            ids.append(leaf_id)
            seen.add(leaf_id)
            leaf_id = self.parent.get(leaf_id)
        ids.reverse()
        return ids

    def newest_leaf_under(self, message_id: int) -> int:
        """The end of the branch through `message_id` that follows the newest version at each step."""
        while self.children.get(message_id):
            message_id = self.children[message_id][-1]
        return message_id

    def versions(self, message_id: int) -> list[int]:
        """The versions of a message (itself and its siblings), oldest first."""
        return list(self.children.get(self.parent.get(message_id), [message_id]))


def branch_ids(conversation_id: int) -> tuple[list[int], MessageTree]:
    """The ids of the branch on screen, first question first, and the tree they come from."""
    tree = MessageTree.load(conversation_id)
    return tree.branch(tree.leaf_id), tree
