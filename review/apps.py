from django.apps import AppConfig


class ReviewConfig(AppConfig):
    """Staff review: transcripts, filters, the usage page, and who read what."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "review"
