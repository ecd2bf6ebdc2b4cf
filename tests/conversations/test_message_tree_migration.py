"""The message tree's migration (0008) backfills in batches, outside one long transaction, and ends
exactly where its first version, one UPDATE per message in a single transaction, ended.

On PostgreSQL, with 50k messages and the reads it no longer blocks: `test_rehearse_migrations.py`.
"""

from __future__ import annotations

import importlib
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = ("conversations", "0007_message_role_created_index")
TREE = ("conversations", "0008_message_tree")
TREE_MIGRATION = importlib.import_module("conversations.migrations.0008_message_tree")


def chain_messages_one_update_per_row(apps, schema_editor):
    """0008's backfill as first written (kept verbatim): the end state the batched one must reach."""
    Conversation = apps.get_model("conversations", "Conversation")
    Message = apps.get_model("conversations", "Message")
    for conversation_id in Conversation.objects.values_list("pk", flat=True).iterator():
        ordered = Message.objects.filter(conversation_id=conversation_id).order_by("created", "id")
        previous = None
        for message_id in ordered.values_list("pk", flat=True):
            if previous is not None:
                Message.objects.filter(pk=message_id).update(parent_id=previous)
            previous = message_id
        if previous is not None:
            Conversation.objects.filter(pk=conversation_id).update(leaf_id=previous)


def migrate(target: tuple[str, str]):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate([target])
    return executor.loader.project_state([target]).apps


@pytest.fixture
def latest_schema_after(transactional_db):
    """Whatever the test migrates to, the next test finds the latest schema."""
    yield
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


def seed_awkward_history(apps, owner_id: int) -> None:
    """Conversations whose messages interleave by id, share times, come out of id order, or are none."""
    conversation_model = apps.get_model("conversations", "Conversation")
    message_model = apps.get_model("conversations", "Message")
    long, short, empty, single, same_time = (
        conversation_model.objects.create(owner_id=owner_id, assistant_id="arithmetic", title=title)
        for title in ("long", "short", "empty", "single", "same time")
    )
    start = datetime(2026, 1, 1, tzinfo=UTC)
    # (conversation, seconds after start): in id order, as concurrent chats would have written them.
    rows = [
        (long, 10), (short, 1), (long, 11), (same_time, 5), (long, 3), (short, 2), (same_time, 5),
        (long, 12), (single, 4), (long, 12), (same_time, 5), (short, 0), (long, 13), (long, 14),
    ]  # fmt: skip
    for n, (conversation, seconds) in enumerate(rows):
        message = message_model.objects.create(
            conversation=conversation, role=("user", "assistant")[n % 2], content=f"message {n}"
        )
        # `created` is set on save (auto_now_add): the history's times come after.
        message_model.objects.filter(pk=message.pk).update(created=start + timedelta(seconds=seconds))
    assert not message_model.objects.filter(conversation=empty).exists()


def snapshot(apps) -> tuple[list[dict], list[dict]]:
    """Every column of every conversation and message."""
    return (
        list(apps.get_model("conversations", "Conversation").objects.order_by("pk").values()),
        list(apps.get_model("conversations", "Message").objects.order_by("pk").values()),
    )


def test_batches_end_where_one_update_per_row_ended(latest_schema_after, alice, monkeypatch):
    # Batches of three messages: a conversation is cut at batch ends, and one is longer than a batch.
    monkeypatch.setattr(TREE_MIGRATION, "BATCH_MESSAGES", 3)
    seed_awkward_history(migrate(BEFORE), alice.pk)

    apps = migrate(TREE)
    batched = snapshot(apps)
    apps.get_model("conversations", "Message").objects.update(parent=None)
    apps.get_model("conversations", "Conversation").objects.update(leaf=None)
    with connection.schema_editor() as schema_editor:
        chain_messages_one_update_per_row(apps, schema_editor)
    one_update_per_row = snapshot(apps)

    assert batched == one_update_per_row
    conversations, messages = batched
    assert sum(message["parent_id"] is not None for message in messages) == len(messages) - 4  # four firsts
    assert [c["leaf_id"] is None for c in conversations] == [False, False, True, False, False]
