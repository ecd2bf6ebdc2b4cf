"""Messages get a parent and conversations a leaf; every conversation so far becomes one branch.

Not atomic, so that no lock outlives its statement: each ALTER adds a nullable column without a
default, which PostgreSQL writes in its catalog alone (its table lock lasts milliseconds, whatever
the table's size), and each batch of the backfill commits on its own. Reads never wait for the
backfill; a write to a message waits at most for the batch holding that message. First written
as one transaction with an UPDATE per message, it held the lock of the ALTER for the whole
backfill: reads of messages waited 18.7 s on 50k messages.

The schema is the same as it was: the operations are the same two AddFields (`sqlmigrate` prints
the same statements), and so are the data: each message follows the one before it in its
conversation, by (created, id), and the last one is the conversation's leaf.
"""

import django.db.models.deletion
from django.db import migrations, models, transaction

BATCH_MESSAGES = 5000
"""About how many messages one batch chains: whole conversations, so a little more at times."""

CHAIN = """
UPDATE {message} SET parent_id = chained.previous
FROM (
    SELECT id, LAG(id) OVER (PARTITION BY conversation_id ORDER BY created, id) AS previous
    FROM {message} WHERE conversation_id > %s AND conversation_id <= %s
) AS chained
WHERE {message}.id = chained.id AND chained.previous IS NOT NULL
"""

LEAF = """
UPDATE {conversation} SET leaf_id = (
    SELECT id FROM {message} WHERE conversation_id = {conversation}.id ORDER BY created DESC, id DESC LIMIT 1
)
WHERE id > %s AND id <= %s AND EXISTS (SELECT 1 FROM {message} WHERE conversation_id = {conversation}.id)
"""


def _batch_end(cursor, message: str, after: int) -> int | None:
    """The last conversation of the batch after conversation `after`; None when none is left."""
    cursor.execute(
        f"SELECT conversation_id FROM {message} WHERE conversation_id > %s ORDER BY conversation_id LIMIT 1 OFFSET %s",
        [after, BATCH_MESSAGES - 1],
    )
    row = cursor.fetchone()
    if row is None:
        cursor.execute(f"SELECT MAX(conversation_id) FROM {message} WHERE conversation_id > %s", [after])
        row = cursor.fetchone()
    return row[0]


def chain_messages(apps, schema_editor):
    """Conversations so far were one line: each message follows the one before it; the last is the leaf."""
    connection = schema_editor.connection
    tables = {
        "conversation": connection.ops.quote_name(apps.get_model("conversations", "Conversation")._meta.db_table),
        "message": connection.ops.quote_name(apps.get_model("conversations", "Message")._meta.db_table),
    }
    chain, leaf = CHAIN.format(**tables), LEAF.format(**tables)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT MIN(conversation_id) FROM {tables['message']}")
        first = cursor.fetchone()[0]
        if first is None:
            return
        after = first - 1
        while (end := _batch_end(cursor, tables["message"], after)) is not None:
            with transaction.atomic(using=connection.alias):
                cursor.execute(chain, [after, end])
                cursor.execute(leaf, [after, end])
            after = end


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ('conversations', '0007_message_role_created_index'),
    ]

    operations = [
        migrations.AddField(
            model_name='conversation',
            name='leaf',
            field=models.ForeignKey(blank=True, help_text='The last message of the branch on screen (every tab shows the same one).', null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='conversations.message'),
        ),
        migrations.AddField(
            model_name='message',
            name='parent',
            field=models.ForeignKey(blank=True, help_text='The message this one follows: a question follows an answer, an answer its question. Siblings are versions (an edited question, a regenerated answer); none for the first question.', null=True, on_delete=django.db.models.deletion.CASCADE, related_name='children', to='conversations.message'),
        ),
        migrations.RunPython(chain_messages, migrations.RunPython.noop),
    ]
