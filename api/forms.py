"""The account page's form: name a new API token, choose how long it works and what it may do."""

from __future__ import annotations

from datetime import timedelta

from django import forms

from api.models import Scope
from api.services import DEFAULT_TOKEN_LIFETIME

LIFETIMES: dict[str, timedelta | None] = {
    "30": timedelta(days=30),
    "90": timedelta(days=90),
    "365": timedelta(days=365),
    "never": None,
}
LIFETIME_CHOICES = [("30", "30 days"), ("90", "90 days"), ("365", "365 days"), ("never", "Never (until revoked)")]
SCOPE_CHOICES = [(Scope.SEND.value, Scope.SEND.label), (Scope.APPROVE.value, Scope.APPROVE.label)]
"""The scopes to choose; every token can read. `send` is offered checked, `approve` (letting a
program run the tools that wait for a person) unchecked."""


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
    scopes = forms.MultipleChoiceField(
        label="What it may do",
        choices=SCOPE_CHOICES,
        widget=forms.CheckboxSelectMultiple,
        initial=[Scope.SEND.value],
        required=False,
    )
