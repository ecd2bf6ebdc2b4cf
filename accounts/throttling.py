"""Login, sign-up and password-reset throttles (django-ratelimit): per client IP and per account,
only POSTs counted; sign-up counts only the accounts it creates.

The counts live in the default cache, Redis when `REDIS_URL` is set, so every process counts
together. Over a limit the page answers 429 with `registration/throttled.html` and `Retry-After`.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import wraps
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django_ratelimit.core import get_usage
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

TOO_MANY_ATTEMPTS = "Too many attempts in a short time, so this one was not tried."

View = Callable[..., HttpResponse]


@dataclass(frozen=True)
class Limit:
    """One count: its name (`group`), what it counts by (a django-ratelimit key), and the setting giving its rate."""

    group: str
    key: str | Callable[[str, HttpRequest], str]
    rate_setting: str


def forwarded_client_ip(request: HttpRequest) -> str:
    """Behind the proxy, the client's IP: the last `X-Forwarded-For` entry, the one our proxy added.

    A client can put anything in the header it sends, but the proxy appends the address it sees
    after that, so only the last entry is trusted. Without a valid one (a request that did not
    come through the proxy), the peer's own address.
    """
    last = request.META.get("HTTP_X_FORWARDED_FOR", "").rsplit(",", 1)[-1].strip()
    try:
        return str(ipaddress.ip_address(last))
    except ValueError:
        return request.META["REMOTE_ADDR"]


def account_key(group: str, request: HttpRequest) -> str:
    """The account a login tries: the username as Django's login form reads it (NFKC, trimmed), case-folded.

    Counting the raw text would let " alice", "ALICE" or "ａｌｉｃｅ" each start a fresh count.
    """
    return unicodedata.normalize("NFKC", request.POST.get("username", "").strip()).casefold()


LOGIN_LIMITS = (
    Limit(group="login-ip", key="ip", rate_setting="LOGIN_RATE_PER_IP"),
    Limit(group="login-account", key=account_key, rate_setting="LOGIN_RATE_PER_ACCOUNT"),
)
SIGNUP_LIMITS = (Limit(group="signup-ip", key="ip", rate_setting="SIGNUP_RATE_PER_IP"),)
PASSWORD_RESET_LIMITS = (Limit(group="password-reset-ip", key="ip", rate_setting="PASSWORD_RESET_RATE_PER_IP"),)


def throttled(*, limits: Sequence[Limit], count_every_post: bool = True) -> Callable[[View], View]:
    """Decorate a view so that a POST over any of `limits` is answered 429 instead.

    With `count_every_post` off, the decorator only looks at the counts: the view itself counts
    the POSTs that did something (`count_success`), so a form sent back with an error costs nothing.
    """

    def decorate(view: View) -> View:
        @wraps(view)
        def throttled_view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            for limit in limits:
                retry_after = _seconds_until_allowed(request, limit=limit, increment=count_every_post)
                if retry_after is not None:
                    return too_many_attempts(request, retry_after=retry_after)
            return view(request, *args, **kwargs)

        return throttled_view

    return decorate


login_throttle = throttled(limits=LOGIN_LIMITS)
signup_throttle = throttled(limits=SIGNUP_LIMITS, count_every_post=False)
password_reset_throttle = throttled(limits=PASSWORD_RESET_LIMITS)


def count_success(request: HttpRequest, *, limits: Sequence[Limit]) -> None:
    """Count a POST that did what it asked (an account created) against `limits`."""
    for limit in limits:
        _seconds_until_allowed(request, limit=limit, increment=True)


def too_many_attempts(request: HttpRequest, *, retry_after: int) -> HttpResponse:
    """The 429 page, with `Retry-After`."""
    context = {"message": TOO_MANY_ATTEMPTS, "wait": _wait_text(retry_after), "back": request.path}
    response = render(request, "registration/throttled.html", context, status=429)
    response["Retry-After"] = str(retry_after)
    return response


def _seconds_until_allowed(request: HttpRequest, *, limit: Limit, increment: bool = True) -> int | None:
    """Count this request against `limit` (or, without `increment`, only look: would one more be
    over?); the seconds to wait when it is over, else None."""
    rate = getattr(settings, limit.rate_setting)
    try:
        usage = get_usage(request, group=limit.group, key=limit.key, rate=rate, method="POST", increment=increment)
    except RedisError:
        # Redis down: logging in keeps working, unthrottled (the chat itself is refused until it is back).
        logger.warning("the %s throttle could not reach the cache; the request was not counted", limit.group)
        return None
    if usage is None:
        return None
    over = usage["should_limit"] if increment else usage["count"] >= usage["limit"]
    if not over:
        return None
    return max(usage["time_left"], 1)


def _wait_text(seconds: int) -> str:
    if seconds < 60:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = math.ceil(seconds / 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"
