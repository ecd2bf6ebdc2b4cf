"""Pages of "my data": download everything of mine (`/accounts/export/`), delete my account
(`/accounts/delete/`). The work is `accounts.my_data`'s."""

from __future__ import annotations

import unicodedata
from urllib.parse import urlencode

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from accounts import my_data
from accounts.oidc import sso_recently_authenticated
from accounts.throttling import Limit, throttled

ACCOUNT_DELETED = "Your account and everything in it was deleted."
LAST_SUPERUSER = (
    "You are the only active superuser: deleting your account would leave nobody to run this site. "
    "Make someone else a superuser first."
)
WRONG_PASSWORD = "That is not your password. Nothing was deleted."
# An account without a password (single sign-on) confirms by signing in again through the provider.
SSO_CONFIRM_SECONDS = 300
SSO_CONFIRM_NEEDED = "Sign in again with single sign-on to confirm, within 5 minutes. Nothing was deleted."
NO_WAY_TO_CONFIRM = "This account has no password and single sign-on is off: an administrator can delete it."


def _signed_in_account(group: str, request: HttpRequest) -> str:
    """The account as the login throttle counts it (NFKC, case-folded): password guesses here and at
    the login form count together, against `LOGIN_RATE_PER_ACCOUNT`."""
    return unicodedata.normalize("NFKC", request.user.get_username().strip()).casefold()


delete_throttle = throttled(
    limits=(Limit(group="login-account", key=_signed_in_account, rate_setting="LOGIN_RATE_PER_ACCOUNT"),)
)


class PasswordForm(forms.Form):
    password = forms.CharField(
        label="Your password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password", "autofocus": True}),
    )


@login_required
@require_http_methods(["GET", "POST"])
def export(request: HttpRequest) -> HttpResponse:
    """GET: what the download holds, with a button. POST: the zip."""
    counts = my_data.account_counts(user=request.user)
    too_large = my_data.export_too_large(counts=counts)
    if request.method == "GET" or too_large:
        status = 413 if request.method == "POST" else 200
        context = {"counts": counts, "too_large": too_large}
        return render(request, "accounts/export.html", context, status=status)
    spool = my_data.export_zip(user=request.user)
    size = spool.seek(0, 2)
    spool.seek(0)
    response = StreamingHttpResponse(my_data.export_chunks(spool), content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{my_data.export_filename(user=request.user)}"'
    response["Content-Length"] = str(size)
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_http_methods(["GET", "POST"])
@delete_throttle
def delete(request: HttpRequest) -> HttpResponse:
    """GET: what goes, and the password asked. POST with the right password: everything goes."""
    user = request.user
    last_superuser = my_data.superuser_would_be_last(user=user)
    if not user.has_usable_password():
        return _delete_confirmed_by_sso(request, last_superuser=last_superuser)
    form = PasswordForm(request.POST or None)
    if request.method == "POST" and not last_superuser and form.is_valid():
        if user.check_password(form.cleaned_data["password"]):
            my_data.account_delete(user=user)
            logout(request)
            messages.success(request, ACCOUNT_DELETED)
            return redirect("login")
        form.add_error("password", WRONG_PASSWORD)
    counts = my_data.account_counts(user=user)
    recent = user.conversations.order_by("-updated", "-id")[:5]
    context = {"form": form, "counts": counts, "recent": recent, "last_superuser": last_superuser and LAST_SUPERUSER}
    status = 400 if request.method == "POST" else 200
    return render(request, "accounts/delete.html", context, status=status)


def _delete_confirmed_by_sso(request: HttpRequest, *, last_superuser: bool) -> HttpResponse:
    """The delete page of an account without a password: a fresh single sign-on (within
    SSO_CONFIRM_SECONDS) stands for the password; the page links to one that comes back here."""
    user = request.user
    fresh = settings.SSO_ENABLED and sso_recently_authenticated(request, seconds=SSO_CONFIRM_SECONDS)
    if request.method == "POST" and not last_superuser and fresh:
        my_data.account_delete(user=user)
        logout(request)
        messages.success(request, ACCOUNT_DELETED)
        return redirect("login")
    reauth = ""
    if settings.SSO_ENABLED:
        reauth = (
            f"{reverse('oidc_authentication_init')}?{urlencode({'next': reverse('account_delete'), 'reauth': '1'})}"
        )
    context = {
        "sso_confirm": True,
        "sso_fresh": fresh,
        "sso_reauth_url": reauth,
        "sso_error": SSO_CONFIRM_NEEDED if request.method == "POST" and settings.SSO_ENABLED else "",
        "no_way_to_confirm": "" if settings.SSO_ENABLED else NO_WAY_TO_CONFIRM,
        "counts": my_data.account_counts(user=user),
        "recent": user.conversations.order_by("-updated", "-id")[:5],
        "last_superuser": last_superuser and LAST_SUPERUSER,
    }
    status = 400 if request.method == "POST" else 200
    return render(request, "accounts/delete.html", context, status=status)
