"""The settings page (`/accounts/settings/`): the name shown, email, theme and default assistant."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from accounts.settings_forms import SettingsForm

SETTINGS_SAVED = "Your settings were saved."


@login_required
@require_http_methods(["GET", "POST"])
def account_settings(request: HttpRequest) -> HttpResponse:
    """GET: the form with what is stored. POST: save and come back here with a message, or the form
    again with what was typed and what is wrong (400)."""
    form = SettingsForm(request.POST if request.method == "POST" else None, user=request.user)
    if request.method == "POST":
        if form.is_valid():
            form.save()
            messages.success(request, SETTINGS_SAVED)
            return redirect("account_settings")
        return render(request, "accounts/settings.html", {"form": form}, status=400)
    return render(request, "accounts/settings.html", {"form": form})
