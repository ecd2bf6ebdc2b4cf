"""The settings form: the name shown, the email address, the page's theme and the default assistant."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.validators import ProhibitNullCharactersValidator
from django.db import transaction

from accounts.forms import EMAIL_IN_USE
from conversations.actions import Refused, text_check
from conversations.assistants import assistant_default_id, assistant_get, assistant_registry
from conversations.models import Preferences

DISPLAY_NAME_MAX = Preferences._meta.get_field("display_name").max_length
EMAIL_MAX = 254
DISPLAY_NAME_TOO_LONG = f"A display name has at most {DISPLAY_NAME_MAX} characters: this one has %(show_value)d."
NO_SUCH_ASSISTANT = "That assistant is not offered here any more: pick one from the list."
EMAIL_REQUIRED = "This site needs an email address for every account."


class SettingsForm(forms.Form):
    """Bound on every field; `save()` writes the user's email and their `Preferences` row (made on
    the first save)."""

    display_name = forms.CharField(
        label="Display name",
        required=False,
        max_length=DISPLAY_NAME_MAX,
        help_text="Shown at the top of every page instead of your username. Leave empty to show your username.",
        error_messages={"max_length": DISPLAY_NAME_TOO_LONG},
        widget=forms.TextInput(attrs={"autocomplete": "nickname", "dir": "auto"}),
    )
    email = forms.EmailField(
        label="Email",
        required=False,
        max_length=EMAIL_MAX,
        help_text="Used only to send you a link if you forget your password.",
        widget=forms.EmailInput(attrs={"autocomplete": "email", "dir": "auto"}),
    )
    theme = forms.ChoiceField(
        label="Theme",
        choices=Preferences.Theme.choices,
        widget=forms.RadioSelect,
    )
    default_assistant_id = forms.ChoiceField(
        label="Default assistant",
        required=False,
        help_text="Who answers a new conversation unless you pick another.",
        error_messages={"invalid_choice": NO_SUCH_ASSISTANT},
    )

    def __init__(self, *args, user: AbstractBaseUser, **kwargs) -> None:
        self.user = user
        preferences = Preferences.objects.filter(user=user).first() or Preferences(user=user)
        default = assistant_registry()[assistant_default_id()]
        offered = [(a.id, a.name) for a in assistant_registry().values()]
        kwargs.setdefault(
            "initial",
            {
                "display_name": preferences.display_name,
                "email": getattr(user, "email", ""),
                "theme": preferences.theme,
                "default_assistant_id": (
                    preferences.default_assistant_id if assistant_get(preferences.default_assistant_id) else ""
                ),
            },
        )
        super().__init__(*args, **kwargs)
        self.preferences = preferences
        self.fields["default_assistant_id"].choices = [("", f"This site's default ({default.name})"), *offered]
        self.fields["email"].required = settings.SIGNUP_REQUIRE_EMAIL
        self.fields["email"].error_messages["required"] = EMAIL_REQUIRED
        if not settings.SIGNUP_REQUIRE_EMAIL:
            self.fields["email"].label = "Email (optional)"
        # text_check says what is wrong with a NUL in the words every other form of the product uses.
        name = self.fields["display_name"]
        name.validators = [v for v in name.validators if not isinstance(v, ProhibitNullCharactersValidator)]

    def clean_display_name(self) -> str:
        name = " ".join(self.cleaned_data["display_name"].split())
        try:
            text_check(field="display name", value=name)
        except Refused as refused:
            raise forms.ValidationError(refused.message, code="unstorable") from None
        return name

    def clean_email(self) -> str:
        email = get_user_model().objects.normalize_email(self.cleaned_data.get("email") or "")
        others = get_user_model().objects.exclude(pk=self.user.pk)
        if email and others.filter(email__iexact=email).exists():
            raise forms.ValidationError(EMAIL_IN_USE, code="email_in_use")
        return email

    def save(self) -> Preferences:
        """Write the email (when changed) and the preferences, together."""
        data = self.cleaned_data
        with transaction.atomic():
            if data["email"] != self.user.email:
                self.user.email = data["email"]
                self.user.save(update_fields=["email"])
            preferences, _created = Preferences.objects.get_or_create(user=self.user)
            preferences.display_name = data["display_name"]
            preferences.theme = data["theme"]
            preferences.default_assistant_id = data["default_assistant_id"]
            preferences.save()
        self.preferences = preferences
        return preferences
