"""The forms of signing up and of changing or resetting a password."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib.auth import forms as auth_forms
from django.contrib.auth import get_user_model

EMAIL_IN_USE = "Another account already uses this email address."


def _text_follows_its_writing(form: forms.Form) -> None:
    """`dir="auto"` on every field a person types in: right-to-left text shows as it was typed."""
    for field in form.fields.values():
        if isinstance(field.widget, forms.widgets.Input):
            field.widget.attrs.setdefault("dir", "auto")


class SignupForm(auth_forms.UserCreationForm):
    """A username, an email address (optional unless `SIGNUP_REQUIRE_EMAIL`) and a password twice."""

    email = forms.EmailField(
        label="Email",
        required=False,
        help_text="Used only to send you a link if you forget your password.",
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )

    class Meta(auth_forms.UserCreationForm.Meta):
        model = get_user_model()
        fields = ("username", "email")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["email"].required = settings.SIGNUP_REQUIRE_EMAIL
        if not settings.SIGNUP_REQUIRE_EMAIL:
            self.fields["email"].label = "Email (optional)"
        _text_follows_its_writing(self)

    def clean_email(self) -> str:
        email = get_user_model().objects.normalize_email(self.cleaned_data.get("email") or "")
        if email and get_user_model().objects.filter(email__iexact=email).exists():
            raise forms.ValidationError(EMAIL_IN_USE, code="email_in_use")
        return email


class PasswordResetForm(auth_forms.PasswordResetForm):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        _text_follows_its_writing(self)


class PasswordChangeForm(auth_forms.PasswordChangeForm):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        _text_follows_its_writing(self)


class SetPasswordForm(auth_forms.SetPasswordForm):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        _text_follows_its_writing(self)
