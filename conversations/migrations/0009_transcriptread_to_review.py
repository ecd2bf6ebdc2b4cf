"""`TranscriptRead` moves to the `review` app: the state only; its table stays where it is."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("conversations", "0008_message_tree"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="TranscriptRead")],
            database_operations=[],
        ),
    ]
