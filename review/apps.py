from django.apps import AppConfig


class ReviewConfig(AppConfig):
    """Staff review: transcripts, filters, the usage page, and who read what."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "review"

    def ready(self) -> None:
        from django.contrib.auth import get_user_model
        from django.db.models.signals import pre_delete

        from review.pseudonyms import reads_pseudonymise

        # Every path that deletes a user (the admin, the ORM, an account's own deletion) goes through it.
        pre_delete.connect(reads_pseudonymise, sender=get_user_model(), dispatch_uid="review.reads_pseudonymise")
