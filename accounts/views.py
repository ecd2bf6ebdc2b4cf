"""Pages: sign-up, changing and resetting a password, logging out other sessions (logging in and
out are Django's own views, throttled in `urls.py`)."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse, reverse_lazy
from django.utils.decorators import method_decorator
from django.views.decorators.http import require_POST

from accounts.forms import PasswordChangeForm, PasswordResetForm, SetPasswordForm, SignupForm
from accounts.sessions import other_sessions_end, other_sockets_end
from accounts.throttling import SIGNUP_LIMITS, count_success, password_reset_throttle, signup_throttle

OTHER_SESSIONS_ENDED = "Your other sessions were logged out."
PASSWORD_LOGIN_OFF = "Passwords are not used to log in here: sign in with your company's single sign-on."
PASSWORDS_MANAGED = "Passwords are managed by your company's identity provider, not here."
SIGNUP_CLOSED = "Sign-up is closed. Ask your administrator for an account."
SIGNUP_CLOSED_SSO = "Sign-up is closed: sign in with your company's single sign-on, which creates your account."


def closed_page(request: HttpRequest, *, title: str, message: str, status: int = 404) -> HttpResponse:
    """A page that is switched off here (sign-up closed, passwords managed elsewhere), saying why."""
    return render(request, "registration/closed.html", {"title": title, "message": message}, status=status)


def password_login(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Wrap a password login view: with PASSWORD_LOGIN_ENABLED off, a POST is refused (403) and the
    page shows only the single sign-on button."""

    @wraps(view)
    def checked(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if settings.PASSWORD_LOGIN_ENABLED or request.method != "POST":
            return view(request, *args, **kwargs)
        context = {"password_login_refused": PASSWORD_LOGIN_OFF, "next": request.POST.get("next", "")[:2000]}
        return render(request, "registration/login.html", context, status=403)

    return checked


def admin_login(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """The admin's login form: with PASSWORD_LOGIN_ENABLED off, a GET goes to the site's login page
    (single sign-on, back to the admin), a POST is refused (403)."""
    checked = password_login(view)

    @wraps(view)
    def admin(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not settings.PASSWORD_LOGIN_ENABLED and request.method == "GET":
            next_url = request.GET.get("next", "/admin/")[:2000]
            return redirect(f"{reverse('login')}?{urlencode({'next': next_url})}")
        return checked(request, *args, **kwargs)

    return admin


def password_pages(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Password reset pages: with PASSWORD_LOGIN_ENABLED off, a 404 saying who manages passwords."""

    @wraps(view)
    def checked(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not settings.PASSWORD_LOGIN_ENABLED:
            return closed_page(request, title="Passwords", message=PASSWORDS_MANAGED)
        return view(request, *args, **kwargs)

    return checked


@signup_throttle
def signup(request: HttpRequest) -> HttpResponse:
    """Create an account and log in. Only a created account counts against the sign-up throttle."""
    if request.user.is_authenticated:
        return redirect("conversation_list")
    if not settings.SIGNUP_ENABLED:
        return closed_page(
            request, title="Sign-up", message=SIGNUP_CLOSED_SSO if settings.SSO_ENABLED else SIGNUP_CLOSED
        )
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        count_success(request, limits=SIGNUP_LIMITS)
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        return redirect("conversation_list")
    return render(request, "registration/signup.html", {"form": form})


class PasswordChangeView(auth_views.PasswordChangeView):
    """Django's: the current session stays logged in, every other one of the user's ends."""

    form_class = PasswordChangeForm
    success_url = reverse_lazy("password_change_done")

    def dispatch(self, request, *args, **kwargs):
        # Without a password here (single sign-on, or passwords off) the page keeps "log out other sessions".
        user = request.user
        if user.is_authenticated and not (settings.PASSWORD_LOGIN_ENABLED and user.has_usable_password()):
            status = 200 if request.method == "GET" else 403
            return render(request, self.template_name, {"passwords_managed": PASSWORDS_MANAGED}, status=status)
        return super().dispatch(request, *args, **kwargs)

    def form_valid(self, form):
        response = super().form_valid(form)
        other_sockets_end(self.request.user.pk)
        return response


@method_decorator(password_reset_throttle, name="dispatch")
class PasswordResetView(auth_views.PasswordResetView):
    """Django's: the same answer whether or not an account has the address; throttled per IP."""

    form_class = PasswordResetForm
    email_template_name = "registration/password_reset_email.txt"
    subject_template_name = "registration/password_reset_subject.txt"
    success_url = reverse_lazy("password_reset_done")


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    """Django's (a link works once: the token depends on the password): every session of the user ends."""

    form_class = SetPasswordForm
    success_url = reverse_lazy("password_reset_complete")

    def form_valid(self, form):
        response = super().form_valid(form)
        other_sockets_end(form.user.pk)
        return response


@require_POST
@login_required
def logout_other_sessions(request: HttpRequest) -> HttpResponse:
    """End every session of the user but this one, and close their sockets."""
    other_sessions_end(user_id=request.user.pk, keep=request.session.session_key)
    messages.success(request, OTHER_SESSIONS_ENDED)
    return redirect("password_change")


class LogoutView(auth_views.LogoutView):
    """Django's logout; then the user's sockets check their sessions at once, so the tabs of the
    session that just ended say "signed out" now rather than at their next recheck."""

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        user_id = request.user.pk if request.user.is_authenticated else None
        response = super().post(request, *args, **kwargs)
        if user_id is not None:
            other_sockets_end(user_id)
        return response
