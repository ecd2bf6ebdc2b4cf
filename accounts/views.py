"""Pages: sign-up, changing and resetting a password, logging out other sessions (logging in and
out are Django's own views, throttled in `urls.py`)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.utils.decorators import method_decorator
from django.views.decorators.http import require_POST

from accounts.forms import PasswordChangeForm, PasswordResetForm, SetPasswordForm, SignupForm
from accounts.sessions import other_sessions_end, other_sockets_end
from accounts.throttling import SIGNUP_LIMITS, count_success, password_reset_throttle, signup_throttle

OTHER_SESSIONS_ENDED = "Your other sessions were logged out."


@signup_throttle
def signup(request: HttpRequest) -> HttpResponse:
    """Create an account and log in. Only a created account counts against the sign-up throttle."""
    if request.user.is_authenticated:
        return redirect("conversation_list")
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
