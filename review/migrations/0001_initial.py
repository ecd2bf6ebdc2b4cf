"""`TranscriptRead`, moved here from `conversations` with its table (`conversations_transcriptread`)
kept: a state-only move, plus its content type relabelled so granted permissions stay granted."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def _move_content_type(apps, schema_editor, *, old: str, new: str) -> None:
    """Permissions hang on the content type: keep the same row, under the app that has the model."""
    content_type = apps.get_model("contenttypes", "ContentType")
    types = content_type.objects.using(schema_editor.connection.alias)
    if not types.filter(app_label=new, model="transcriptread").exists():
        types.filter(app_label=old, model="transcriptread").update(app_label=new)


def relabel_content_type(apps, schema_editor):
    _move_content_type(apps, schema_editor, old="conversations", new="review")


def restore_content_type(apps, schema_editor):
    _move_content_type(apps, schema_editor, old="review", new="conversations")


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("conversations", "0009_transcriptread_to_review"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="TranscriptRead",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("reader_username", models.CharField(max_length=150)),
                        (
                            "conversation_number",
                            models.PositiveBigIntegerField(help_text="The conversation's id, kept after it is deleted."),
                        ),
                        ("owner_username", models.CharField(help_text="Whose conversation it was.", max_length=150)),
                        (
                            "messages_shown",
                            models.BooleanField(help_text="Whether the reader could see the messages (view_message)."),
                        ),
                        ("read_at", models.DateTimeField(auto_now_add=True, db_index=True)),
                        (
                            "conversation",
                            models.ForeignKey(
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="reads",
                                to="conversations.conversation",
                            ),
                        ),
                        (
                            "reader",
                            models.ForeignKey(
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="+",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                    ],
                    options={"db_table": "conversations_transcriptread", "ordering": ["-read_at", "-id"]},
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(relabel_content_type, restore_content_type),
    ]
