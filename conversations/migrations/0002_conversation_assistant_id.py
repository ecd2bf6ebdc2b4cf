from django.db import migrations, models

import conversations.models


class Migration(migrations.Migration):
    dependencies = [
        ("conversations", "0001_initial"),
    ]

    operations = [
        # Every conversation before assistants existed was the arithmetic demo's.
        migrations.AddField(
            model_name="conversation",
            name="assistant_id",
            field=models.CharField(db_index=True, default="arithmetic", max_length=100),
            preserve_default=False,
        ),
        migrations.AlterField(
            model_name="conversation",
            name="assistant_id",
            field=models.CharField(
                db_index=True,
                default=conversations.models.default_assistant_id,
                help_text="The assistant that answers (an id from AGENT_ASSISTANTS).",
                max_length=100,
            ),
        ),
    ]
