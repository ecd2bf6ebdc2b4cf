"""Staff see who has API tokens (never the tokens themselves: only their hash is stored)."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from api.models import ApiToken


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("name", "user", "prefix", "created", "last_used", "revoked")
    list_filter = ("created", "revoked")
    search_fields = ("name", "prefix", "user__username")
    readonly_fields = ("user", "name", "prefix", "created", "last_used", "revoked")
    exclude = ("digest",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object | None = None) -> bool:
        return False
