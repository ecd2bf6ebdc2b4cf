"""The conversation list counts the messages on screen: the branch from the first question to the
conversation's leaf, as the chat page shows it. Hidden versions (a regenerated answer, an edited
question) are not counted; the count follows the version chosen; the whole list is one query.

The count is a recursive SQL query: it runs here on SQLite and, in its own process, on PostgreSQL.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.urls import reverse

from conversations.branches import MessageTree
from conversations.models import Conversation, Message
from conversations.selectors import conversation_list_for_page
from conversations.services import answer_regenerate, branch_select, turn_start
from tests.live_server import postgres_database
from tests.services import require_postgres

ROOT = Path(__file__).resolve().parents[2]


def _answered(conversation: Conversation, started) -> Message:
    """The started turn's answer, finished (the next question may follow)."""
    answer = started.assistant_message
    Message.objects.filter(pk=answer.pk).update(status=Message.Status.COMPLETED)
    conversation.refresh_from_db()
    return answer


def ask(conversation: Conversation, text: str, *, edit_of: Message | None = None) -> tuple[Message, Message]:
    """Ask `text` (or, with `edit_of`, that question again as `text`); the question and its answer."""
    started = turn_start(conversation=conversation, content=text, client_id=uuid.uuid4().hex,
                         run_id=uuid.uuid4().hex, model="", worker="tests", edit_of=edit_of)  # fmt: skip
    return started.user_message, _answered(conversation, started)


def regenerate(conversation: Conversation) -> Message:
    started = answer_regenerate(conversation=conversation, client_id=uuid.uuid4().hex, run_id=uuid.uuid4().hex,
                                model="", worker="tests")  # fmt: skip
    return _answered(conversation, started)


def conversations_with_versions(owner) -> dict[str, tuple[int, int, int]]:
    """Conversations of `owner` with hidden versions: name -> (id, messages on screen, messages stored)."""
    made = {}

    plain = Conversation.objects.create(owner=owner)
    ask(plain, "One")
    ask(plain, "Two")
    made["plain"] = (plain, 4)

    regenerated = Conversation.objects.create(owner=owner)
    ask(regenerated, "One")
    ask(regenerated, "Two")
    regenerate(regenerated)
    regenerate(regenerated)
    made["regenerated"] = (regenerated, 4)  # 6 stored: three versions of the last answer

    edited = Conversation.objects.create(owner=owner)
    first, _ = ask(edited, "One")
    ask(edited, "Two")
    ask(edited, "Three")
    ask(edited, "One, said better", edit_of=first)
    made["edited"] = (edited, 2)  # 8 stored: the first question's new version has its own answer

    chosen_back = Conversation.objects.create(owner=owner)
    first, _ = ask(chosen_back, "One")
    _, second_answer = ask(chosen_back, "Two")
    ask(chosen_back, "One again", edit_of=first)
    branch_select(conversation=chosen_back, message_id=second_answer.pk)
    made["chosen back"] = (chosen_back, 4)  # 6 stored: the earlier version shown again

    without_leaf = Conversation.objects.create(owner=owner)  # as before the tree: the newest one's branch
    ask(without_leaf, "One")
    ask(without_leaf, "Two")
    regenerate(without_leaf)
    Conversation.objects.filter(pk=without_leaf.pk).update(leaf=None)
    made["without leaf"] = (without_leaf, 4)

    named = Conversation.objects.create(owner=owner, title="Named, nothing said yet")
    made["named"] = (named, 0)

    return {
        name: (conversation.pk, on_screen, Message.objects.filter(conversation=conversation).count())
        for name, (conversation, on_screen) in made.items()
    }


def list_counts(owner) -> dict[str, dict[int, int]]:
    """The list's counts, and the lengths of the branches the chat page shows, by conversation id."""
    listed = {c.pk: c.message_count for c in conversation_list_for_page(user=owner)}
    shown = {}
    for conversation_id in listed:
        tree = MessageTree.load(conversation_id)
        shown[conversation_id] = len(tree.branch(tree.leaf_id))
    return {"listed": listed, "shown": shown}


def check(made: dict[str, tuple[int, int, int]], counts: dict[str, dict]) -> None:
    listed = {int(k): v for k, v in counts["listed"].items()}
    shown = {int(k): v for k, v in counts["shown"].items()}
    assert {name: listed[pk] for name, (pk, _, _) in made.items()} == {
        name: on_screen for name, (_, on_screen, _) in made.items()
    }
    assert listed == shown  # the list says what the chat page shows
    assert {name: stored for name, (_, _, stored) in made.items() if stored != listed[made[name][0]]} == {
        "regenerated": 6, "edited": 8, "chosen back": 6, "without leaf": 5,
    }  # fmt: skip


def test_the_list_counts_the_messages_on_screen(alice, bob, django_assert_num_queries):
    made = conversations_with_versions(alice)
    conversations_with_versions(bob)  # another user's messages count for nothing here

    with django_assert_num_queries(1):  # the whole list at once, however many conversations
        listed = {c.pk: c.message_count for c in conversation_list_for_page(user=alice)}
    check(made, {"listed": listed, "shown": list_counts(alice)["shown"]})


def test_the_page_shows_the_count_of_the_branch_on_screen(alice, client):
    made = conversations_with_versions(alice)
    client.force_login(alice)
    page = client.get(reverse("conversation_list")).content.decode()
    assert "4 messages" in page and "2 messages" in page
    assert not any(f"{stored} messages" in page for _, _, stored in made.values() if stored > 4)


PROCESS = """
import json, sys
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from django.contrib.auth import get_user_model
from tests.conversations.test_list_counts import conversations_with_versions, list_counts
owner = get_user_model().objects.create_user("alice", password="unused-password-1")
made = conversations_with_versions(owner)
from django.db import connection
print(json.dumps({"made": made, "counts": list_counts(owner), "vendor": connection.vendor}))
"""


@pytest.mark.postgres
def test_the_count_on_postgresql():
    url, drop = postgres_database(require_postgres())
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST", "OPENAI_"))}
        env |= {"DJANGO_SETTINGS_MODULE": "chatsite.settings", "DJANGO_SECRET_KEY": "tests-only", "DATABASE_URL": url}
        result = subprocess.run([sys.executable, "-c", PROCESS], cwd=ROOT, env=env, capture_output=True, text=True,
                                timeout=180)  # fmt: skip
        assert result.returncode == 0, result.stderr
        output = json.loads(result.stdout.strip().splitlines()[-1])
    finally:
        drop()
    assert output["vendor"] == "postgresql"
    check({name: tuple(row) for name, row in output["made"].items()}, output["counts"])
