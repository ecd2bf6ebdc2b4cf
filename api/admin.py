"""Staff see who has API tokens (never the tokens themselves: only their hash is stored).

Django's model permissions decide: `api.view_apitoken` to see them, `api.delete_apitoken` to delete
one (which refuses it from then on, like revoking); nobody adds or edits a token here. Each token's
scopes (read, send, approve) show what it may do; they are chosen when it is made and never change.
"""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from api.models import ApiToken


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("name", "user", "prefix", "scopes", "created", "expires", "last_used", "revoked")
    list_filter = ("created", "expires", "revoked")
    search_fields = ("name", "prefix", "user__username")
    readonly_fields = ("user", "name", "prefix", "scopes", "created", "expires", "last_used", "revoked")
    exclude = ("digest",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object | None = None) -> bool:
        return False
