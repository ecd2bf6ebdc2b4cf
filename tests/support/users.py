"""Accounts for tests: users, staff with permissions, and the session cookie a logged-in browser sends."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Permission, User
from django.test import Client

PASSWORD = "a-long-test-password"


def make_user(username: str, **extra: Any) -> User:
    return User.objects.create_user(username=username, password=PASSWORD, **extra)


def make_staff(username: str, *codenames: str) -> User:
    """A staff account with the permissions named by `codenames` (and no others)."""
    staff = make_user(username, is_staff=True)
    staff.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return staff


def session_cookie(user: User) -> str:
    """The `sessionid` of a fresh login of `user`."""
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value
