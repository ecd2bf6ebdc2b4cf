"""The account page's form: name a new API token, and choose how long it works."""

from __future__ import annotations

from datetime import timedelta

from django import forms

from api.services import DEFAULT_TOKEN_LIFETIME

LIFETIMES: dict[str, timedelta | None] = {
    "30": timedelta(days=30),
    "90": timedelta(days=90),
    "365": timedelta(days=365),
    "never": None,
}
LIFETIME_CHOICES = [("30", "30 days"), ("90", "90 days"), ("365", "365 days"), ("never", "Never (until revoked)")]


class ApiTokenCreateForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        strip=True,
        help_text="What the token is for, e.g. “laptop script”.",
        widget=forms.TextInput(attrs={"placeholder": "e.g. laptop script", "autocomplete": "off"}),
    )
    lifetime = forms.TypedChoiceField(
        label="Expires after",
        choices=LIFETIME_CHOICES,
        coerce=LIFETIMES.__getitem__,
        initial="90",
        required=False,
        empty_value=DEFAULT_TOKEN_LIFETIME,
    )
