from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """Signing up and logging in, and the throttles in front of them."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "accounts"
