"""The account page's form: name a new API token."""

from __future__ import annotations

from django import forms


class ApiTokenCreateForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        strip=True,
        help_text="What the token is for, e.g. “laptop script”.",
        widget=forms.TextInput(attrs={"placeholder": "e.g. laptop script", "autocomplete": "off"}),
    )
