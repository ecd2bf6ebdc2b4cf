"""The account page of API tokens: list, create (the token is shown once, with the scopes chosen), revoke."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from api.forms import ApiTokenCreateForm
from api.models import Scope
from api.selectors import api_token_list_for_user
from api.services import CreatedToken, api_token_create, api_token_revoke

TOKEN_REVOKED = "Token revoked: programs using it are refused from now on."


@never_cache
@login_required
def token_list(request: HttpRequest) -> HttpResponse:
    """The user's tokens, and a form to create one; after creating, the new token is shown this once."""
    form = ApiTokenCreateForm(request.POST or None)
    created: CreatedToken | None = None
    if request.method == "POST" and form.is_valid():
        created = api_token_create(
            user=request.user,
            name=form.cleaned_data["name"],
            lifetime=form.cleaned_data["lifetime"],
            scopes=form.cleaned_data["scopes"],
        )
        form = ApiTokenCreateForm()
    context = {
        "form": form,
        "tokens": api_token_list_for_user(user=request.user),
        "created": created,
        "api_base": request.build_absolute_uri("/api/"),
        "read_scope_label": Scope.READ.label,
    }
    return render(request, "api/tokens.html", context)


@login_required
@require_POST
def token_revoke(request: HttpRequest, token_id: int) -> HttpResponse:
    """Revoke one of the user's tokens."""
    if not api_token_revoke(user=request.user, token_id=token_id):
        raise Http404("No such token.")
    messages.success(request, TOKEN_REVOKED)
    return redirect("api_tokens")
