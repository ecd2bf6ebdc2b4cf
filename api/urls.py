"""URLs of the API (`/api/...`) and of the account page of API tokens."""

from __future__ import annotations

from django.urls import path

from api import views
from api.endpoints import api

urlpatterns = [
    path("api/", api.urls),
    path("account/tokens/", views.token_list, name="api_tokens"),
    path("account/tokens/<int:token_id>/revoke/", views.token_revoke, name="api_token_revoke"),
]
