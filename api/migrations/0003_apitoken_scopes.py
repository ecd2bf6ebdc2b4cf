"""Tokens get scopes; every token made before keeps all three, so that it goes on doing what it did."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("api", "0002_apitoken_expires"),
    ]

    operations = [
        migrations.AddField(
            model_name="apitoken",
            name="scopes",
            field=models.CharField(
                default="read send approve",
                help_text="What the token may do, space-separated: read, send, approve (fixed at creation).",
                max_length=64,
            ),
            preserve_default=False,
        ),
    ]
