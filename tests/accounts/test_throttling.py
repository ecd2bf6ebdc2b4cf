"""Login and sign-up throttles: per IP and per account, POSTs only, a 429 page, the proxy's client IP."""

from __future__ import annotations

import logging

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.urls import reverse

from accounts.throttling import TOO_MANY_ATTEMPTS
from tests.live_server import free_port

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-test-password"
PROXY = "10.0.0.2"


@pytest.fixture(autouse=True)
def counts_from_zero():
    cache.clear()
    yield
    cache.clear()


def log_in(client, username: str, password: str = "wrong", url: str = "", **extra):
    return client.post(url or reverse("login"), {"username": username, "password": password}, **extra)


def sign_up(client, username: str, **extra):
    data = {"username": username, "password1": PASSWORD, "password2": PASSWORD}
    return client.post(reverse("signup"), data, **extra)


def assert_throttled(response) -> None:
    assert response.status_code == 429
    assert TOO_MANY_ATTEMPTS in response.content.decode()
    assert "registration/throttled.html" in [t.name for t in response.templates]
    assert 0 < int(response["Retry-After"]) <= 3600


def test_login_posts_over_the_per_ip_limit_get_a_429_page_and_gets_do_not_count(client, settings, alice):
    settings.LOGIN_RATE_PER_IP = "3/h"

    for _ in range(5):
        assert client.get(reverse("login")).status_code == 200
    for attempt in range(3):
        assert log_in(client, f"someone{attempt}").status_code == 200  # the form, with its error
    refused = log_in(client, "alice", PASSWORD)

    assert_throttled(refused)
    assert "_auth_user_id" not in client.session
    assert log_in(client, "alice", PASSWORD, REMOTE_ADDR="192.0.2.1").status_code == 302  # another IP


def test_login_per_account_counts_every_spelling_of_the_username_from_any_ip(client, settings, alice):
    settings.LOGIN_RATE_PER_ACCOUNT = "3/h"

    for number, spelling in enumerate(["alice", " ALICE", "ａｌｉｃｅ"]):
        assert log_in(client, spelling, REMOTE_ADDR=f"192.0.2.{number}").status_code == 200

    assert_throttled(log_in(client, "Alice", PASSWORD, REMOTE_ADDR="198.51.100.1"))
    assert log_in(client, "bob").status_code == 200  # other accounts are not held up


def test_the_admin_login_counts_with_the_site_login(client, settings, alice):
    settings.LOGIN_RATE_PER_ACCOUNT = "2/h"
    admin_login = reverse("admin:login")

    assert log_in(client, "alice").status_code == 200
    assert log_in(client, "alice", url=admin_login).status_code == 200

    assert_throttled(log_in(client, "alice", url=admin_login))
    assert_throttled(log_in(client, "alice"))


def test_sign_up_over_the_per_ip_limit_gets_a_429_and_creates_no_account(client, settings, transactional_db):
    settings.SIGNUP_RATE_PER_IP = "2/h"

    assert client.get(reverse("signup")).status_code == 200
    for username in ["carol", "dave"]:
        assert sign_up(client, username).status_code == 302
        client.logout()
    refused = sign_up(client, "erin")

    assert_throttled(refused)
    assert "minute" in refused.content.decode()
    assert not User.objects.filter(username="erin").exists()


def test_behind_the_proxy_each_client_counts_by_the_address_the_proxy_adds(client, settings, alice):
    settings.RATELIMIT_IP_META_KEY = "accounts.throttling.forwarded_client_ip"
    settings.LOGIN_RATE_PER_IP = "2/h"

    def through_proxy(forwarded_for: str, username: str):
        return log_in(client, username, REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=forwarded_for)

    # The client makes up a new address for each attempt; the proxy appends the one it sees.
    assert through_proxy("1.1.1.1, 203.0.113.7", "a").status_code == 200
    assert through_proxy("2.2.2.2, 203.0.113.7", "b").status_code == 200
    assert_throttled(through_proxy("3.3.3.3, 203.0.113.7", "c"))

    assert through_proxy("198.51.100.9", "d").status_code == 200  # another client, same proxy
    assert through_proxy("198.51.100.10", "e").status_code == 200


def test_without_a_usable_forwarded_address_the_peer_counts(client, settings, alice):
    settings.RATELIMIT_IP_META_KEY = "accounts.throttling.forwarded_client_ip"
    settings.LOGIN_RATE_PER_IP = "2/h"

    assert log_in(client, "a", REMOTE_ADDR="192.0.2.50").status_code == 200
    assert log_in(client, "b", REMOTE_ADDR="192.0.2.50", HTTP_X_FORWARDED_FOR="not-an-ip").status_code == 200
    assert_throttled(log_in(client, "c", REMOTE_ADDR="192.0.2.50", HTTP_X_FORWARDED_FOR="1.2.3.4, <script>"))


def test_an_unreachable_cache_lets_logins_through_and_says_so_in_the_log(client, settings, alice, caplog):
    settings.LOGIN_RATE_PER_IP = settings.LOGIN_RATE_PER_ACCOUNT = "1/h"
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{free_port()}/0",
            "OPTIONS": {"socket_connect_timeout": 1},
        }
    }

    with caplog.at_level(logging.WARNING, logger="accounts.throttling"):
        assert log_in(client, "alice").status_code == 200
        assert log_in(client, "alice", PASSWORD).status_code == 302

    assert "could not reach the cache" in caplog.text
