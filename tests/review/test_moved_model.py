"""`TranscriptRead` moved from `conversations` to `review`: an existing database keeps its rows and
the permissions granted on it."""

from __future__ import annotations

from django.contrib.auth.models import Permission, User
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from review.models import TranscriptRead

BEFORE_THE_MOVE = [("review", None), ("conversations", "0008_message_tree")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state([t for t in targets if t[1] is not None]).apps


def test_reads_and_their_permission_survive_the_move(transactional_db, alice):
    latest = MigrationExecutor(connection).loader.graph.leaf_nodes()
    migrate(latest)  # from wherever an earlier test left the schema's history
    old = migrate(BEFORE_THE_MOVE)
    old_read = old.get_model("conversations", "TranscriptRead")
    old_read.objects.create(reader_username="rita", conversation_number=7, owner_username="alice", messages_shown=True)
    ContentType.objects.clear_cache()
    reads_type = ContentType.objects.get(app_label="conversations", model="transcriptread")
    alice.user_permissions.add(Permission.objects.get(content_type=reads_type, codename="view_transcriptread"))

    migrate(latest)
    ContentType.objects.clear_cache()

    read = TranscriptRead.objects.get()
    assert (read.reader_username, read.conversation_number, read.owner_username) == ("rita", 7, "alice")
    assert User.objects.get(pk=alice.pk).has_perm("review.view_transcriptread")
